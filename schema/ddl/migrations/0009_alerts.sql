-- Alerts: a detection rule's findings, published by correlator instances
-- and stored like every event. The rule gets a column of its own
-- (alert_rule_id): rule_id stays the policy rule that decided a request, so
-- a query over decisions never counts a detection. Evidence times are
-- microseconds since the epoch (18.16 has no DateTime64); the alerts view
-- shows them as DateTime too. One column per ALTER (see 0003).
ALTER TABLE {db}.events_raw ADD COLUMN alert_rule_id String AFTER response_outcome;
ALTER TABLE {db}.events_raw ADD COLUMN alert_title String AFTER alert_rule_id;
ALTER TABLE {db}.events_raw ADD COLUMN alert_severity String AFTER alert_title;
ALTER TABLE {db}.events_raw ADD COLUMN alert_tags Array(String) AFTER alert_severity;
ALTER TABLE {db}.events_raw ADD COLUMN alert_group_fields Array(String) AFTER alert_tags;
ALTER TABLE {db}.events_raw ADD COLUMN alert_group_values Array(String) AFTER alert_group_fields;
ALTER TABLE {db}.events_raw ADD COLUMN alert_first_us UInt64 AFTER alert_group_values;
ALTER TABLE {db}.events_raw ADD COLUMN alert_last_us UInt64 AFTER alert_first_us;
ALTER TABLE {db}.events_raw ADD COLUMN alert_count UInt64 AFTER alert_last_us;
ALTER TABLE {db}.events_raw ADD COLUMN alert_evidence Array(String) AFTER alert_count;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;

-- One row per alert, exact at any moment: an alert's id is derived from its
-- finding and its time is that of the event that completed it, so a
-- redelivered or re-published alert has the same sort key (tenant,
-- event_time, event_id) and FINAL collapses it. instance is the correlator
-- instance that published it; event_time when it was raised.
CREATE VIEW IF NOT EXISTS {db}.alerts AS
SELECT
    event_id                                       AS alert_id,
    tenant,
    alert_rule_id                                  AS rule_id,
    alert_title                                    AS title,
    alert_severity                                 AS severity,
    alert_tags                                     AS tags,
    alert_group_fields                             AS group_fields,
    alert_group_values                             AS group_values,
    toDateTime(intDiv(alert_first_us, 1000000))    AS first_at,
    alert_first_us                                 AS first_at_us,
    toDateTime(intDiv(alert_last_us, 1000000))     AS last_at,
    alert_last_us                                  AS last_at_us,
    alert_count                                    AS matched,
    alert_evidence                                 AS evidence,
    instance,
    event_time,
    event_time_us,
    collected_at
FROM {db}.events_raw FINAL
WHERE kind = 'alert';
