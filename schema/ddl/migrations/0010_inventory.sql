-- What the agent inventory (component/inventory) said of each event's agent
-- when the collector stored it: who owns it, its team, purpose, risk tier
-- and environment, whether an entry matched at all (agent_registered), and
-- which version of the inventory was consulted (agent_inventory, empty
-- when none was configured: only then is agent_registered = 0 not a
-- finding). Not part of the event, so not covered by the chain.
ALTER TABLE {db}.events_raw ADD COLUMN agent_owner String AFTER alert_evidence;
ALTER TABLE {db}.events_raw ADD COLUMN agent_team String AFTER agent_owner;
ALTER TABLE {db}.events_raw ADD COLUMN agent_purpose String AFTER agent_team;
ALTER TABLE {db}.events_raw ADD COLUMN agent_risk_tier String AFTER agent_purpose;
ALTER TABLE {db}.events_raw ADD COLUMN agent_environment String AFTER agent_risk_tier;
ALTER TABLE {db}.events_raw ADD COLUMN agent_registered UInt8 AFTER agent_environment;
ALTER TABLE {db}.events_raw ADD COLUMN agent_inventory String AFTER agent_registered;

DROP TABLE IF EXISTS {db}.events;

CREATE VIEW IF NOT EXISTS {db}.events AS SELECT * FROM {db}.events_raw FINAL;
