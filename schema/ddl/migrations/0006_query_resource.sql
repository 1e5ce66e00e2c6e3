-- The request's raw query string and the URI of an MCP resources/read:
-- both are policy inputs, so both are part of the record.
ALTER TABLE {db}.events_raw ADD COLUMN query String AFTER path;
ALTER TABLE {db}.events_raw ADD COLUMN resource String AFTER query;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
