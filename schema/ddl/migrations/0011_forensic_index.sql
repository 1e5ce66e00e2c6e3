-- Forensic lookups without FINAL. events_raw is sorted by (tenant,
-- event_time, event_id), so a question that names a request (in no
-- tenant), a session, a task or an identity would read a whole tenant or
-- the whole table. event_keys says in which seconds of which tenant each
-- such key has events: one row per key and second, filled by a
-- materialized view as events are inserted. Queries read it by its sort
-- key, then events_raw only in those seconds, and count each event once
-- by its id (LIMIT 1 BY event_id), so redelivered copies that are not yet
-- merged never show twice. Keys: session, task, request, actor (the
-- current one), principal, chain for each delegating agent before it, and
-- alert for an alert's own id.
CREATE TABLE IF NOT EXISTS {db}.event_keys (
    key_kind   String,
    key        String,
    tenant     String,
    event_time DateTime
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (key_kind, key, tenant, event_time);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_keys_mv TO {db}.event_keys AS
SELECT k.1 AS key_kind, k.2 AS key, tenant, event_time
FROM {db}.events_raw
ARRAY JOIN arrayConcat(
    [('session', session_id), ('request', request_id), ('actor', actor), ('principal', subject), ('task', task_id),
     ('alert', if(kind = 'alert', event_id, ''))],
    arrayMap(s -> ('chain', s), arrayPopBack(chain_subjects))) AS k
WHERE k.2 != ''
GROUP BY key_kind, key, tenant, event_time;

-- Events stored before the view existed, a day at a time ({each_day}: the
-- whole table's groups outgrow a query's memory at 100M events). One
-- inserted while this runs is keyed twice, which the ReplacingMergeTree
-- and the queries absorb.
INSERT INTO {db}.event_keys (key_kind, key, tenant, event_time)
SELECT k.1 AS key_kind, k.2 AS key, tenant, event_time
FROM {db}.events_raw
ARRAY JOIN arrayConcat(
    [('session', session_id), ('request', request_id), ('actor', actor), ('principal', subject), ('task', task_id),
     ('alert', if(kind = 'alert', event_id, ''))],
    arrayMap(s -> ('chain', s), arrayPopBack(chain_subjects))) AS k
WHERE k.2 != '' AND {each_day}
GROUP BY key_kind, key, tenant, event_time;

-- Decisions per tenant, effect, rule and day, as the set of their
-- positions in each enforcer chain (instance, epoch, seq): a position
-- names one event, so counting a set is exact however many copies of an
-- event arrived, and copies of one event fall in the same group, so the
-- groups' counts add up. Serves the all-time questions (decisions by
-- tenant and effect, denials by rule) from tens of thousands of rows
-- instead of every decision, and sets of integers merge several times
-- faster than sets of event ids.
CREATE TABLE IF NOT EXISTS {db}.decisions_daily (
    tenant    String,
    effect    String,
    policy_id String,
    rule_id   String,
    day       Date,
    instance  String,
    epoch     String,
    seqs      AggregateFunction(uniqExact, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, effect, policy_id, rule_id, day, instance, epoch);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.decisions_daily_mv TO {db}.decisions_daily AS
SELECT tenant, effect, policy_id, rule_id, toDate(event_time) AS day, instance, epoch, uniqExactState(seq) AS seqs
FROM {db}.events_raw
WHERE kind = 'decision'
GROUP BY tenant, effect, policy_id, rule_id, day, instance, epoch;

-- A day at a time too: a day's groups never span two days.
INSERT INTO {db}.decisions_daily (tenant, effect, policy_id, rule_id, day, instance, epoch, seqs)
SELECT tenant, effect, policy_id, rule_id, toDate(event_time) AS day, instance, epoch, uniqExactState(seq) AS seqs
FROM {db}.events_raw
WHERE kind = 'decision' AND {each_day}
GROUP BY tenant, effect, policy_id, rule_id, day, instance, epoch;
