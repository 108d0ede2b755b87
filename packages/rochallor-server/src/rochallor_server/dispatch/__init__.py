"""Job dispatch other than polling: ``kafka_outbox`` (transactional outbox → Kafka)."""
