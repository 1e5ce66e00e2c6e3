// Package forensic holds the named queries a SOC analyst, `rampart demo`,
// `rampart investigate` and the dashboards run against Rampart's ClickHouse
// tables. Each is plain SQL that runs unchanged on ClickHouse 18.16 and on
// current ClickHouse; tests run every one on both engines and compare the
// answers.
//
// None of the event queries reads through FINAL, which merges the whole
// table on every query (Sessions reads the small sessions view). Each
// narrows events_raw by its sort key first (tenant and time, found for a
// session, request, identity or alert in event_keys) and then counts every
// event once by its id, so copies a redelivery left unmerged never show
// twice: exact at any moment, and fast because the dedup runs over the few
// rows the key selected.
package forensic

import (
	"strconv"
	"strings"
	"time"
)

func inDB(db, q string) string { return strings.ReplaceAll(q, "{db}", db) }

// DecisionCounts counts decisions by tenant and effect over all time.
// Columns: tenant, effect, decisions.
//
// It reads the pre-aggregation decisions_by_day, which holds each group's
// set of chain positions (a redelivered copy adds nothing to a set): sets
// are merged per group, where copies of an event always fall, and only
// the groups' counts summed.
func DecisionCounts(db string) string {
	return inDB(db, `SELECT tenant, effect, sum(n) AS decisions
FROM (
    SELECT tenant, effect, uniqExactMerge(seqs) AS n
    FROM {db}.decisions_by_day
    GROUP BY tenant, effect, policy_id, rule_id, day, instance, epoch)
GROUP BY tenant, effect
ORDER BY tenant, effect`)
}

// KindCounts counts events by kind. Columns: kind, events.
func KindCounts(db string) string {
	return inDB(db, `SELECT kind, count() AS events
FROM (SELECT kind FROM {db}.events_raw LIMIT 1 BY event_id)
GROUP BY kind ORDER BY kind`)
}

// KeyWindow restricts events_raw to the tenant and the span of seconds in
// which event_keys holds key (one of keyKinds) and bounds (a condition on
// event_time, or ""): the primary key's range for them. The caller adds
// the condition on the key's own column, which this only narrows.
func KeyWindow(tenant string, keyKinds []string, key, bounds string) string {
	kinds := make([]string, len(keyKinds))
	for i, k := range keyKinds {
		kinds[i] = Quote(k)
	}
	sel := `FROM {db}.event_keys WHERE key_kind IN (` + strings.Join(kinds, ", ") + `) AND key = ` + Quote(key) +
		` AND tenant = ` + Quote(tenant) + bounds
	return `tenant = ` + Quote(tenant) + bounds + `
  AND event_time >= (SELECT min(event_time) ` + sel + `)
  AND event_time <= (SELECT max(event_time) ` + sel + `)`
}

func keyWindow(tenant, keyKind, key string) string {
	return KeyWindow(tenant, []string{keyKind}, key, "")
}

// RequestWindow restricts events_raw to the tenants and span of seconds
// event_keys holds for a request id, which names no tenant.
func RequestWindow(requestID string) string {
	sel := `FROM {db}.event_keys WHERE key_kind = 'request' AND key = ` + Quote(requestID)
	return `tenant IN (SELECT tenant ` + sel + `)
      AND event_time >= (SELECT min(event_time) ` + sel + `)
      AND event_time <= (SELECT max(event_time) ` + sel + `)`
}

// SessionTimeline reconstructs one session in order: who called which tool,
// on whose behalf, which rule decided, and what came of it.
// Columns: time, seq, kind, chain (principal first, current actor last),
// tool, effect, policy_id, rule_id, reason, status, request_id.
func SessionTimeline(db, tenant, session string) string {
	return inDB(db, `SELECT
    event_time AS time,
    seq,
    kind,
    arrayStringConcat(arrayConcat([subject], chain_subjects), ' -> ') AS chain,
    tool,
    effect,
    policy_id,
    rule_id,
    reason,
    if(kind = 'response', toString(status), '') AS status,
    request_id
FROM (
    SELECT event_time, event_time_us, instance, seq, kind, subject, chain_subjects, tool, effect,
        policy_id, rule_id, reason, status, request_id
    FROM {db}.events_raw
    WHERE `+keyWindow(tenant, "session", session)+`
      AND session_id = `+Quote(session)+`
    LIMIT 1 BY event_id)
ORDER BY event_time_us, instance, seq`)
}

// Sessions lists the sessions the correlator derived, newest first.
// Columns: tenant, session_id, principal, agents, chain, first_seen,
// last_seen, requests, allowed, denied, responses.
func Sessions(db string) string {
	return inDB(db, `SELECT tenant, session_id, principal, agents, chain, first_seen, last_seen,
    requests, allowed, denied, responses
FROM {db}.sessions
ORDER BY last_seen DESC, tenant, session_id`)
}

// Between restricts events_raw to [from, to) of one tenant: its primary
// key's range.
func Between(tenant string, from, to time.Time) string {
	return `tenant = ` + Quote(tenant) + `
  AND event_time >= toDateTime(` + Quote(from.UTC().Format(time.DateTime)) + `, 'UTC')
  AND event_time < toDateTime(` + Quote(to.UTC().Add(time.Second-1).Format(time.DateTime)) + `, 'UTC')
  AND event_time_us >= ` + strconv.FormatInt(from.UnixMicro(), 10) + `
  AND event_time_us < ` + strconv.FormatInt(to.UnixMicro(), 10)
}

// AgentActivity lists what one actor did in a tenant over [from, to).
// Columns: time, kind, session_id, tool, effect, rule_id.
func AgentActivity(db, tenant, actor string, from, to time.Time) string {
	return inDB(db, `SELECT event_time AS time, kind, session_id, tool, effect, rule_id
FROM (
    SELECT event_time, event_time_us, seq, kind, session_id, tool, effect, rule_id
    FROM {db}.events_raw
    WHERE `+Between(tenant, from, to)+`
      AND actor = `+Quote(actor)+`
    LIMIT 1 BY event_id)
ORDER BY event_time_us, seq`)
}

// Request shows every event of one request id, in any tenant.
// Columns: event_time_us, kind, tenant, session_id, tool, effect, rule_id,
// policy_hash, status.
func Request(db, requestID string) string {
	return inDB(db, `SELECT event_time_us, kind, tenant, session_id, tool, effect, rule_id, policy_hash, status
FROM (
    SELECT event_time_us, kind, tenant, session_id, tool, effect, rule_id, policy_hash, status
    FROM {db}.events_raw
    WHERE `+RequestWindow(requestID)+`
      AND request_id = `+Quote(requestID)+`
    LIMIT 1 BY event_id)
ORDER BY event_time_us, kind`)
}

// DeniedByRule ranks the rules that denied most in a tenant.
// Columns: policy_id, rule_id, denials.
func DeniedByRule(db, tenant string) string {
	return inDB(db, `SELECT policy_id, rule_id, sum(n) AS denials
FROM (
    SELECT policy_id, rule_id, uniqExactMerge(seqs) AS n
    FROM {db}.decisions_by_day
    WHERE tenant = `+Quote(tenant)+` AND effect = 'deny'
    GROUP BY policy_id, rule_id, day, instance, epoch)
GROUP BY policy_id, rule_id
ORDER BY denials DESC, rule_id`)
}

// UnresolvedEvidence lists the evidence of stored alerts that does not
// resolve to a stored event of the alert's own tenant: ids no event has
// (tenants empty), or only events of other tenants have. It reads every
// stored copy (events_raw, not the view), as `rampart verify` must, and
// looks up only the ids alerts name. where is a SQL condition over
// events_raw selecting the alerts to check (the caller builds it from
// quoted values; "1" for all).
// Columns: instance, epoch, seq (the alert's place in its chain), alert_id,
// tenant, rule_id, evidence_id, tenants (those that hold the id, sorted,
// comma-separated).
func UnresolvedEvidence(db, where string) string {
	return inDB(db, `SELECT DISTINCT instance, epoch, seq, alert_id, tenant, rule_id, evidence_id,
    arrayStringConcat(arraySort(tenants), ',') AS holders
FROM (
    SELECT instance, epoch, seq, event_id AS alert_id, tenant, alert_rule_id AS rule_id, arrayJoin(alert_evidence) AS evidence_id
    FROM {db}.events_raw
    WHERE kind = 'alert' AND (`+where+`)
) AS cited ANY LEFT JOIN (
    SELECT event_id AS evidence_id, groupUniqArray(tenant) AS tenants
    FROM {db}.events_raw
    WHERE event_id IN (SELECT arrayJoin(alert_evidence) FROM {db}.events_raw WHERE kind = 'alert' AND (`+where+`))
    GROUP BY event_id
) AS held USING evidence_id
WHERE NOT has(tenants, tenant)
ORDER BY instance, epoch, seq, evidence_id`)
}

// UnregisteredAgents lists the agents that acted over [from, to) while an
// agent inventory was consulted but matched no entry of it (rows stored
// without an inventory say nothing either way), most active first.
// Columns: tenant, actor, spiffe_id, events, first_seen, last_seen.
func UnregisteredAgents(db string, from, to time.Time) string {
	return inDB(db, `SELECT tenant, actor, spiffe_id, count() AS events, min(event_time) AS first_seen, max(event_time) AS last_seen
FROM {db}.events
WHERE agent_inventory != '' AND agent_registered = 0 AND actor != ''
  AND event_time >= toDateTime(`+Quote(from.UTC().Format(time.DateTime))+`, 'UTC')
  AND event_time < toDateTime(`+Quote(to.UTC().Format(time.DateTime))+`, 'UTC')
GROUP BY tenant, actor, spiffe_id
ORDER BY events DESC, tenant, actor, spiffe_id`)
}
