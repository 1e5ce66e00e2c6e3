-- Request headers the enforcer is configured to record (record_headers),
-- as parallel arrays of lower-case names (sorted) and values.
ALTER TABLE {db}.events_raw ADD COLUMN header_names Array(String) AFTER resource;
ALTER TABLE {db}.events_raw ADD COLUMN header_values Array(String) AFTER header_names;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
