// Package forensic holds the named queries a SOC analyst, `rampart demo` and
// the dashboards run against Rampart's ClickHouse views. Each is plain SQL
// that runs unchanged on ClickHouse 18.16 and on current ClickHouse; tests
// run every one on both engines and compare the answers.
package forensic

import (
	"strings"
	"time"
)

// Quote returns s as a ClickHouse string literal.
func Quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func inDB(db, q string) string { return strings.ReplaceAll(q, "{db}", db) }

// DecisionCounts counts decisions by tenant and effect.
// Columns: tenant, effect, decisions.
func DecisionCounts(db string) string {
	return inDB(db, `SELECT tenant, effect, count() AS decisions
FROM {db}.events
WHERE kind = 'decision'
GROUP BY tenant, effect
ORDER BY tenant, effect`)
}

// KindCounts counts events by kind. Columns: kind, events.
func KindCounts(db string) string {
	return inDB(db, `SELECT kind, count() AS events FROM {db}.events GROUP BY kind ORDER BY kind`)
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
FROM {db}.events
WHERE tenant = `+Quote(tenant)+` AND session_id = `+Quote(session)+`
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

// AgentActivity lists what one actor did in a tenant over [from, to).
// Columns: time, kind, session_id, tool, effect, rule_id.
func AgentActivity(db, tenant, actor string, from, to time.Time) string {
	return inDB(db, `SELECT event_time AS time, kind, session_id, tool, effect, rule_id
FROM {db}.events
WHERE tenant = `+Quote(tenant)+` AND actor = `+Quote(actor)+`
  AND event_time >= toDateTime(`+Quote(from.UTC().Format(time.DateTime))+`, 'UTC')
  AND event_time < toDateTime(`+Quote(to.UTC().Format(time.DateTime))+`, 'UTC')
ORDER BY event_time_us, seq`)
}

// DeniedByRule ranks the rules that denied most in a tenant.
// Columns: policy_id, rule_id, denials.
func DeniedByRule(db, tenant string) string {
	return inDB(db, `SELECT policy_id, rule_id, count() AS denials
FROM {db}.events
WHERE tenant = `+Quote(tenant)+` AND kind = 'decision' AND effect = 'deny'
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
