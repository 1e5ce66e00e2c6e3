package dashboards_test

import (
	"fmt"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"net/http"
	"strconv"
	"testing"

	"github.com/rampart-io/rampart/dashboards/build"
)

const (
	acmeSession = "acme-sess-1"
	researcher  = "agent:researcher"
)

func (f *fixture) scenarios(uid string) []scenario {
	switch uid {
	case build.ScopeUID:
		return []scenario{{name: "all", set: map[string][]string{"alert": {f.alertIDs["acme exfiltration"]}}}}
	case build.BoundaryUID:
		return []scenario{{name: "all"}, {name: "acme", set: map[string][]string{"tenant": {"acme"}}},
			{name: "quoted", set: map[string][]string{"tenant": {quotedTenant}}}}
	case build.SessionUID:
		return []scenario{
			{name: "session", set: map[string][]string{"tenant": {"acme"}, "session": {acmeSession}}},
			{name: "researcher", set: map[string][]string{"tenant": {"acme"}, "session": {acmeSession}, "agent": {researcher}}},
		}
	}
	return []scenario{{name: "all"}}
}

// expectations are what each query must return for the fixture, derived
// from the demo's workload (loadtest/workload.Scenario: per session four
// calls allowed, four denied, one of them by deep delegation; per tenant
// one call without a token) and from the events the fixture added.
func (f *fixture) expectations() map[string]func(*testing.T, result) {
	s := sessionsPerTenant
	var decisions, denied, unauthenticated int
	for _, r := range f.report.Results {
		decisions++
		if r.Status != http.StatusOK {
			denied++
		}
		if r.Status == http.StatusUnauthorized {
			unauthenticated++
		}
	}
	probes := len(f.report.Probes)
	decisions += probes + f.synthetic
	denied += probes
	// Connection-level refusals come before identity; the other probes
	// carry the prober's token: acme's planner, in no session.
	identifiedProbes := 0
	for _, p := range f.report.Probes {
		if p.Code != "request_malformed" && p.Code != "headers_too_large" {
			identifiedProbes++
		}
	}
	// The fixture's decisions are acme's shadow hits and the quoted tenant's one.
	acmeDecisions := 8*s + f.shadowHits + identifiedProbes
	unidentified := unauthenticated + probes - identifiedProbes

	rows := func(n int) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			if len(r.rows) != n {
				t.Errorf("%d rows, want %d: %v", len(r.rows), n, brief(r.rows))
			}
		}
	}
	sum := func(col string, n int) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			if got := r.sum(t, col); got != n {
				t.Errorf("sum(%s) = %d, want %d: %v", col, got, n, r.rows)
			}
		}
	}
	all := func(checks ...func(*testing.T, result)) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			for _, c := range checks {
				c(t, r)
			}
		}
	}
	cell := func(keyCol, key, col, want string) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			got := r.where(t, keyCol, key)
			if len(got) != 1 {
				t.Errorf("%s = %q: %d rows, want 1: %v", keyCol, key, len(got), r.rows)
				return
			}
			if v := got[0][r.col(t, col)]; v != want {
				t.Errorf("%s = %q: %s = %q, want %q", keyCol, key, col, v, want)
			}
		}
	}
	count := func(col, val string, n int) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			if got := len(r.where(t, col, val)); got != n {
				t.Errorf("%d rows with %s = %q, want %d", got, col, val, n)
			}
		}
	}
	sumWhere := func(keyCol, key, col string, n int) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			sub := result{names: r.names, types: r.types, rows: r.where(t, keyCol, key)}
			if got := sub.sum(t, col); got != n {
				t.Errorf("sum(%s) where %s = %q is %d, want %d: %v", col, keyCol, key, got, n, r.rows)
			}
		}
	}
	schemaEvents := func(t *testing.T, r result) {
		t.Helper()
		n := len(r.where(t, "kind", "tool_schema"))
		if n != 0 && n != len(toolserver.Tools) || len(r.rows) != 20+n {
			t.Errorf("%d rows, %d of them tool_schema: want 20 and none or one per tool (%d)", len(r.rows), n, len(toolserver.Tools))
		}
	}
	itoa := strconv.Itoa
	scope, bnd, sess, integ := build.ScopeUID+"/", build.BoundaryUID+"/", build.SessionUID+"/", build.IntegrityUID+"/"
	return map[string]func(*testing.T, result){
		// Scope violations: the fixture's three alerts, one critical.
		scope + "Alerts over time by rule and severity/all": sum("alerts", 3),
		scope + "Open critical alerts/all":                  sum("critical", 1),
		scope + "Top agents by alerts/all": all(rows(3), sum("alerts", 3),
			func(t *testing.T, r result) {
				if n := len(r.where(t, "agent", researcher)); n != 2 {
					t.Errorf("%d rows for %s, want one per tenant: %v", n, researcher, r.rows)
				}
			}),
		scope + "Top principals by alerts/all": all(rows(2), cell("principal", "user:u1@acme.example", "alerts", "2")),
		scope + "Alerts/all":                   all(rows(3), cell("alert_id", f.alertIDs["acme bypass"], "severity", "critical")),
		scope + "Evidence of the selected alert/all": all(rows(2),
			func(t *testing.T, r result) {
				for _, row := range r.rows {
					if row[r.col(t, "effect")] != "deny" || row[r.col(t, "session_id")] != acmeSession || row[r.col(t, "actor")] != researcher {
						t.Errorf("evidence row %v is not the researcher's denied call in %s", row, acmeSession)
					}
				}
			}),

		// Boundary overview.
		bnd + "Decisions over time by effect and tenant/all":  sum("decisions", decisions),
		bnd + "Decisions over time by effect and tenant/acme": sum("decisions", acmeDecisions+unauthenticated+probes-identifiedProbes),
		bnd + "Denials by rule and code/all": all(sum("denials", denied),
			count("rule_id", "deny-shell", 2), sumWhere("rule_id", "deny-shell", "denials", 2*s),
			sumWhere("caller_tenant", "(unidentified)", "denials", unauthenticated+probes-identifiedProbes)),
		bnd + "Denials by rule and code/acme": all(sum("denials", 4*s+unauthenticated+probes),
			cell("rule_id", "deny-shell", "denials", itoa(s))),
		bnd + "Refusals before policy (identity, schema, request)/all": all(rows(1+probes),
			cell("code", "token_missing", "refusals", itoa(unauthenticated)),
			cell("code", "token_missing", "stage", "identity"),
			cell("code", "path_invalid", "stage", "request")),
		bnd + "Refusals before policy (identity, schema, request)/acme": sum("refusals", unauthenticated+probes),
		bnd + "Top tools/all": all(cell("tool", "shell", "denied", itoa(2*s)), cell("tool", "read_file", "allowed", itoa(2*s)),
			cell("tool", "fetch_url", "allowed", itoa(f.shadowHits))),
		bnd + "Top tools/acme":        all(cell("tool", "shell", "denied", itoa(s)), cell("tool", "read_file", "allowed", itoa(s))),
		bnd + "Top destinations/all":  cell("destination", "internet", "allowed", itoa(f.shadowHits)),
		bnd + "Top destinations/acme": cell("destination", "internet", "allowed", itoa(f.shadowHits)),
		bnd + "Shadow-rule hits/all":  all(rows(1), cell("shadow_rule", shadowRule, "while_allowed", itoa(f.shadowHits))),
		bnd + "Shadow-rule hits/acme": all(rows(1), cell("shadow_rule", shadowRule, "while_allowed", itoa(f.shadowHits))),
		// One tenant whose name needs quoting, plus the unidentified callers.
		bnd + "Decisions over time by effect and tenant/quoted":           sum("decisions", 1+unidentified),
		bnd + "Denials by rule and code/quoted":                           sum("denials", unidentified),
		bnd + "Refusals before policy (identity, schema, request)/quoted": sum("refusals", unidentified),
		bnd + "Top tools/quoted":                                          all(rows(1), cell("tool", "lookup", "allowed", "1")),
		bnd + "Top destinations/quoted":                                   cell("host", "tools.obrien.example", "allowed", "1"),
		bnd + "Shadow-rule hits/quoted":                                   rows(0),

		// Session and agent: acme's first session, 8 calls, 4 forwarded.
		// The first tools/list of the run, in whichever session it came,
		// pinned every tool's schema: tool_schema events in that session.
		sess + "Session timeline/session": all(count("kind", "request", 8), count("kind", "decision", 8),
			count("kind", "response", 4), count("effect", "deny", 4), schemaEvents),
		sess + "Session timeline/researcher": all(count("kind", "request", 8), count("kind", "decision", 8), schemaEvents),
		sess + "Delegation chains in the session/session": all(rows(3), sum("decisions", 8),
			cell("chain", "agent:planner > agent:researcher > agent:unknown", "denied", "1")),
		sess + "Delegation chains in the session/researcher": rows(3),
		sess + "Alerts of the session/session":               rows(2),
		sess + "Alerts of the session/researcher":            rows(2),
		// Three acting agents per session; the fixture's own decisions act
		// as the user; the identified probe is the planner's, in no session.
		sess + "Agent activity across sessions and principals/session":    all(rows(3*s+1+identifiedProbes), sum("decisions", acmeDecisions)),
		sess + "Agent activity across sessions and principals/researcher": all(rows(s), sum("decisions", 3*s), sum("denied", 2*s)),
		sess + "Agent decisions over time/session":                        sum("decisions", acmeDecisions),
		sess + "Agent decisions over time/researcher":                     sum("decisions", 3*s),

		// Record integrity: seq 3 and 6 missing from the fixture's chain, 3 declared unrecorded.
		integ + "Sequence gaps per chain/all": all(rows(1), cell("instance", gapInstance, "missing", "2"),
			cell("instance", gapInstance, "unrecorded", "1")),
		integ + "Unrecorded events in checkpoints/all": all(rows(1), cell("instance", gapInstance, "unrecorded_seqs", "3")),
		integ + "Last signed checkpoint per instance/all": all(cell("instance", gapInstance, "at_seq", "5"),
			cell("instance", gapInstance, "key_id", "fixture-key")),
		integ + "Storage delay (collected_at − event_time)/all": func(t *testing.T, r result) {
			if len(r.rows) == 0 {
				t.Error("no rows")
			}
		},

		// Alert rules over the last minutes: the fixture's alerts are fresh.
		"rule/rampart-alert-high":   all(rows(2), cell("rule_id", "boundary-bypass", "severity", "critical"), cell("rule_id", "exfil-after-deny", "severity", "high")),
		"rule/rampart-alert-bypass": all(rows(1), cell("rule_id", "boundary-bypass", "tenant", "acme")),
		"rule/rampart-sequence-gaps": func(t *testing.T, r result) {
			for _, row := range r.rows {
				want := "0"
				if row[r.col(t, "instance")] == gapInstance {
					want = "1" // seq 6: no checkpoint explains it
				}
				if got := row[r.col(t, "unexplained")]; got != want {
					t.Errorf("%v: unexplained %s, want %s", row, got, want)
				}
			}
			if len(r.where(t, "instance", gapInstance)) != 1 {
				t.Errorf("no row for %s: %v", gapInstance, r.rows)
			}
		},
	}
}

// brief keeps failure messages readable.
func brief(rows [][]string) any {
	if len(rows) > 6 {
		return fmt.Sprintf("%v ... (%d rows)", rows[:6], len(rows))
	}
	return rows
}
