-- Task credentials: the downstream tokens the enforcer mints in place of
-- the caller's own. A decision names the credential it put on the request
-- (decision_credential_jti), so one credential's calls are one query; a
-- credential event (kind 'credential') holds its issue or revocation: jti,
-- audience, scope, signing key, expiry (microseconds since the epoch: 18.16
-- has no DateTime64) and reason. One column per ALTER (see 0003).
ALTER TABLE {db}.events_raw ADD COLUMN decision_credential_jti String AFTER alert_evidence;
ALTER TABLE {db}.events_raw ADD COLUMN credential_action String AFTER decision_credential_jti;
ALTER TABLE {db}.events_raw ADD COLUMN credential_jti String AFTER credential_action;
ALTER TABLE {db}.events_raw ADD COLUMN credential_audience String AFTER credential_jti;
ALTER TABLE {db}.events_raw ADD COLUMN credential_scope Array(String) AFTER credential_audience;
ALTER TABLE {db}.events_raw ADD COLUMN credential_key_id String AFTER credential_scope;
ALTER TABLE {db}.events_raw ADD COLUMN credential_expires_us UInt64 AFTER credential_key_id;
ALTER TABLE {db}.events_raw ADD COLUMN credential_reason String AFTER credential_expires_us;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;

-- One row per credential issued or revoked. What a credential touched is
-- the decisions naming it: SELECT ... FROM events WHERE
-- decision_credential_jti = '<jti>'.
CREATE VIEW IF NOT EXISTS {db}.credentials AS
SELECT
    event_id,
    tenant,
    credential_action                                  AS action,
    credential_jti                                     AS jti,
    credential_audience                                AS audience,
    credential_scope                                   AS scope,
    credential_key_id                                  AS key_id,
    toDateTime(intDiv(credential_expires_us, 1000000)) AS expires_at,
    credential_expires_us                              AS expires_at_us,
    credential_reason                                  AS reason,
    subject,
    chain_subjects,
    task_id,
    session_id,
    request_id,
    instance,
    event_time,
    event_time_us,
    collected_at
FROM {db}.events_raw FINAL
WHERE kind = 'credential';
