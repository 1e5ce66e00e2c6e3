package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rampart-io/rampart/loadtest/history"
	"github.com/rampart-io/rampart/schema/forensic"
)

// question is one analyst question: as the views answered it before the
// forensic tables (baseline) and as Rampart answers it now.
type question struct {
	name              string
	baseline, current func(db string) string
	// normalize makes the two answers comparable (nil: as they are).
	norm func([][]string) [][]string
}

func (q question) normalize(rows [][]string) [][]string {
	if q.norm == nil {
		return rows
	}
	return q.norm(rows)
}

// inDB puts db into a query written with {db}.
func inDB(db, q string) string { return strings.ReplaceAll(q, "{db}", db) }

// keys are the tenant, session, agent, request and day the questions ask
// about: those of the call in the middle of the history.
type keys struct {
	tenant, session, actor, request string
	day                             time.Time
}

// pick chooses the keys; the agent is read back, as an analyst would see it.
func pick(ctx context.Context, e engine, db string, cfg history.Config) (keys, error) {
	call := cfg.Calls() / 2
	k := keys{request: cfg.Request(call), day: cfg.Time(call).Truncate(24 * time.Hour)}
	k.tenant, k.session = cfg.Session(call)
	rows, err := e.Query(ctx, "SELECT any(actor) FROM "+db+".events_raw WHERE tenant = "+forensic.Quote(k.tenant)+" AND session_id = "+forensic.Quote(k.session))
	if err != nil {
		return k, err
	}
	k.actor = rows[0][0]
	return k, nil
}

// questions are the five of the requirement.
func questions(k keys) []question {
	tenant, session, actor, req, day := k.tenant, k.session, k.actor, k.request, k.day
	q := forensic.Quote
	return []question{
		{
			name: "session timeline",
			baseline: func(db string) string {
				return inDB(db, `SELECT event_time AS time, seq, kind,
    arrayStringConcat(arrayConcat([subject], chain_subjects), ' -> ') AS chain,
    tool, effect, policy_id, rule_id, reason, if(kind = 'response', toString(status), '') AS status, request_id
FROM {db}.events
WHERE tenant = `+q(tenant)+` AND session_id = `+q(session)+`
ORDER BY event_time_us, instance, seq`)
			},
			current: func(db string) string { return forensic.SessionTimeline(db, tenant, session) },
		},
		{
			name: "agent activity, one day",
			baseline: func(db string) string {
				return inDB(db, `SELECT event_time AS time, kind, session_id, tool, effect, rule_id
FROM {db}.events
WHERE tenant = `+q(tenant)+` AND actor = `+q(actor)+`
  AND event_time >= toDateTime(`+q(day.Format(time.DateTime))+`, 'UTC')
  AND event_time < toDateTime(`+q(day.Add(24*time.Hour).Format(time.DateTime))+`, 'UTC')
ORDER BY event_time_us, seq`)
			},
			current: func(db string) string {
				return forensic.AgentActivity(db, tenant, actor, day, day.Add(24*time.Hour))
			},
			// Same-microsecond events of two instances may come in either order.
			norm: sorted,
		},
		{
			name: "one request id",
			baseline: func(db string) string {
				return inDB(db, `SELECT event_time_us, kind, tenant, session_id, tool, effect, rule_id, policy_hash, status
FROM {db}.events WHERE request_id = `+q(req)+` ORDER BY event_time_us, kind`)
			},
			current: func(db string) string { return forensic.Request(db, req) },
		},
		{
			name: "denials by rule, one tenant",
			baseline: func(db string) string {
				return inDB(db, `SELECT policy_id, rule_id, count() AS denials
FROM {db}.events
WHERE tenant = `+q(tenant)+` AND kind = 'decision' AND effect = 'deny'
GROUP BY policy_id, rule_id
ORDER BY denials DESC, rule_id`)
			},
			current: func(db string) string { return forensic.DeniedByRule(db, tenant) },
		},
		{
			name: "decisions by tenant and effect, all time",
			baseline: func(db string) string {
				return inDB(db, `SELECT tenant, effect, count() AS decisions
FROM {db}.events
WHERE kind = 'decision'
GROUP BY tenant, effect
ORDER BY tenant, effect`)
			},
			current: forensic.DecisionCounts,
		},
	}
}

func sorted(rows [][]string) [][]string {
	out := slices.Clone(rows)
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(strings.Join(a, "\x00"), strings.Join(b, "\x00")) })
	return out
}

// prepare waits for what the schema derives from events_raw to be complete
// before timing starts. Materialized views fill synchronously with each
// insert, so there is nothing to wait for yet.
func prepare(ctx context.Context, e engine, db string) error { return nil }
