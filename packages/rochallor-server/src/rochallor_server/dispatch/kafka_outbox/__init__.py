"""kafka_outbox mode: Kafka records of jobs, the producer, the outbox relay."""
