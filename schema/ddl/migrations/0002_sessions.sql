-- One row per session, rewritten by the correlator as events arrive; the
-- newest version of a row wins. Analysts query the view {db}.sessions.
CREATE TABLE IF NOT EXISTS {db}.sessions_raw (
    tenant          String,
    session_id      String,
    first_seen      DateTime,
    last_seen       DateTime,
    principal       String,
    agents          Array(String),
    chain           Array(String),
    tasks           Array(String),
    requests        UInt64,
    allowed         UInt64,
    denied          UInt64,
    responses       UInt64,
    last_stream_seq UInt64,
    version         UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, session_id);

CREATE VIEW IF NOT EXISTS {db}.sessions AS SELECT * FROM {db}.sessions_raw FINAL;
