-- Where each call goes and what data it carries, from the enforcer's
-- destination map: the inputs of policy that analysts filter on.
ALTER TABLE {db}.events_raw ADD COLUMN destination String AFTER body_bytes;
ALTER TABLE {db}.events_raw ADD COLUMN data_class String AFTER destination;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
