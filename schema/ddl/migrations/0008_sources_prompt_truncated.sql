-- Where a session or task id came from (token, server, client), the
-- JSON-RPC message kind and the prompt of a prompts/get (no longer filed as
-- a tool), which client values the record holds cut short, and how a
-- forwarded exchange ended.
ALTER TABLE {db}.events_raw ADD COLUMN session_source String AFTER task_id;
ALTER TABLE {db}.events_raw ADD COLUMN task_source String AFTER session_source;
ALTER TABLE {db}.events_raw ADD COLUMN rpc_kind String AFTER rpc_method;
ALTER TABLE {db}.events_raw ADD COLUMN prompt String AFTER tool;
ALTER TABLE {db}.events_raw ADD COLUMN truncated Array(String) AFTER data_class;
ALTER TABLE {db}.events_raw ADD COLUMN response_outcome String AFTER response_bytes;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
