-- Events as published by enforcers, one row per event. Redelivered events
-- collapse on (tenant, event_time, event_id) when parts merge; analysts
-- query the view {db}.events, which is exact at any moment.
CREATE TABLE IF NOT EXISTS {db}.events_raw (
    event_id       String,
    kind           String,
    event_time     DateTime,
    event_time_us  UInt64,
    tenant         String,
    instance       String,
    seq            UInt64,
    request_id     String,
    traceparent    String,
    tracestate     String,
    subject        String,
    issuer         String,
    spiffe_id      String,
    chain_subjects Array(String),
    chain_issuers  Array(String),
    actor          String,
    session_id     String,
    task_id        String,
    method         String,
    host           String,
    path           String,
    rpc_method     String,
    tool           String,
    args_digest    String,
    args           String,
    body_bytes     Int64,
    effect         String,
    policy_id      String,
    rule_id        String,
    policy_hash    String,
    reason         String,
    code           String,
    eval_ns        Int64,
    status         Int32,
    duration_ns    Int64,
    response_bytes Int64,
    stream_seq     UInt64,
    collected_at   DateTime
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, event_time, event_id);

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
