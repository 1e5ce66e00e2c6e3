-- Audit-only (shadow) rules that applied to a decision: what would have
-- decided. Part of the chain hash, so verify reads it back.
ALTER TABLE {db}.events_raw ADD COLUMN shadow_rules Array(String) AFTER eval_ns;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
