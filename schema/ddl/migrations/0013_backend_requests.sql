-- What verifying backends saw: a tool server wrapped in Rampart's backend
-- middleware reports every request it serves or refuses (kind
-- 'backend_request'): the credential's jti once its signature verified
-- (backend_jti), the backend's audience, the peer's address, the status it
-- answered and the refusal's stable code. Its request id, identity and
-- request are the columns every event has. One column per ALTER (see 0003).
ALTER TABLE {db}.events_raw ADD COLUMN backend_jti String AFTER credential_reason;
ALTER TABLE {db}.events_raw ADD COLUMN backend_audience String AFTER backend_jti;
ALTER TABLE {db}.events_raw ADD COLUMN backend_client String AFTER backend_audience;
ALTER TABLE {db}.events_raw ADD COLUMN backend_status Int32 AFTER backend_client;
ALTER TABLE {db}.events_raw ADD COLUMN backend_code String AFTER backend_status;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;

-- One row per request a backend reported. A call that bypassed the
-- enforcer is one whose request_id names no allowed decision carrying its
-- jti: SELECT ... FROM backend_requests b LEFT JOIN (SELECT request_id,
-- decision_credential_jti FROM events WHERE kind = 'decision' AND effect =
-- 'allow') d ... (the correlator's backend-bypass rule raises it live).
CREATE VIEW IF NOT EXISTS {db}.backend_requests AS
SELECT
    event_id,
    tenant,
    request_id,
    backend_jti                                        AS jti,
    backend_audience                                   AS audience,
    backend_client                                     AS client,
    spiffe_id,
    backend_status                                     AS status,
    backend_code                                       AS code,
    method,
    host,
    path,
    subject,
    issuer,
    task_id,
    session_id,
    instance,
    event_time,
    event_time_us,
    collected_at
FROM {db}.events_raw FINAL
WHERE kind = 'backend_request';
