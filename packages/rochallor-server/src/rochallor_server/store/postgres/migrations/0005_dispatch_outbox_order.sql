-- Kafka outbox relay: drain order is (created_at, id), and a relay holding back the rows of a
-- job type whose topic fails also holds back the later rows of the same instances, found by
-- instance.

DROP INDEX ix_dispatch_outbox_created;
CREATE INDEX ix_dispatch_outbox_order ON dispatch_outbox (created_at, id);
CREATE INDEX ix_dispatch_outbox_instance ON dispatch_outbox (instance_id, created_at, id);
