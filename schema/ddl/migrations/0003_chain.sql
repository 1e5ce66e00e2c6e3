-- Tamper evidence: each event's epoch and the hash of its predecessor, and
-- the fields of signed checkpoints, so `rampart verify` can recompute every
-- chain from the stored columns. One column per ALTER: the migrator skips a
-- column that already exists (ClickHouse 18.16 has no ADD COLUMN IF NOT
-- EXISTS). The view is re-created to show the new columns.
ALTER TABLE {db}.events_raw ADD COLUMN epoch String AFTER seq;
ALTER TABLE {db}.events_raw ADD COLUMN prev_hash String AFTER epoch;
ALTER TABLE {db}.events_raw ADD COLUMN checkpoint_key_id String AFTER response_bytes;
ALTER TABLE {db}.events_raw ADD COLUMN checkpoint_sig String AFTER checkpoint_key_id;
ALTER TABLE {db}.events_raw ADD COLUMN checkpoint_unrecorded Array(UInt64) AFTER checkpoint_sig;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
