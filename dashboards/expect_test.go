package dashboards_test

import (
	"fmt"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/event"
	"slices"
	"sort"
	"strconv"
	"strings"
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

// expectations are what each query must return for the fixture: counted
// from the demo's report (every call it made, who made it and what status
// it got; the probes), from the events the fixture added, and for alerts
// from what the stream holds — never from the storage under test.
func (f *fixture) expectations() map[string]func(*testing.T, result) {
	// What the demo's calls imply, counted from its report: each call one
	// decision, with the status it got (its declared task's requests too).
	calls := append(slices.Clone(f.report.Results), f.report.Task.Results()...)
	countCalls := func(keep func(workload.Result) bool) int {
		n := 0
		for _, r := range calls {
			if keep(r) {
				n++
			}
		}
		return n
	}
	actor := func(r workload.Result) string {
		if a := r.Call.Caller.Actors; len(a) > 0 {
			return a[len(a)-1]
		}
		return r.Call.Caller.Principal
	}
	allowed := func(r workload.Result) bool { return r.Status/100 == 2 } // a task declared is 201
	unauth := func(r workload.Result) bool { return r.Call.NoToken }
	of := func(tenant string) func(workload.Result) bool {
		return func(r workload.Result) bool { return !r.Call.NoToken && r.Call.Caller.Tenant == tenant }
	}
	inSession := func(r workload.Result) bool { return of("acme")(r) && r.Call.Caller.Session == acmeSession }
	and := func(fs ...func(workload.Result) bool) func(workload.Result) bool {
		return func(r workload.Result) bool {
			for _, f := range fs {
				if !f(r) {
					return false
				}
			}
			return true
		}
	}
	not := func(f func(workload.Result) bool) func(workload.Result) bool {
		return func(r workload.Result) bool { return !f(r) }
	}
	tool := func(name string) func(workload.Result) bool {
		return func(r workload.Result) bool { return r.Call.Tool == name && r.Call.RPCMethod == "tools/call" }
	}
	byActor := func(name string) func(workload.Result) bool {
		return func(r workload.Result) bool { return actor(r) == name }
	}
	distinct := func(keep func(workload.Result) bool, key func(workload.Result) string) int {
		seen := map[string]bool{}
		for _, r := range calls {
			if keep(r) {
				seen[key(r)] = true
			}
		}
		return len(seen)
	}
	chainOf := func(r workload.Result) string { return strings.Join(r.Call.Caller.Actors, " > ") }

	probes := len(f.report.Probes)
	unauthenticated := countCalls(unauth)
	decisions := len(calls) + probes + f.synthetic
	denied := countCalls(not(allowed)) + probes
	// Connection-level refusals come before identity; the other probes
	// carry the prober's token: acme's planner, in no session.
	identifiedProbes := 0
	probeCodes := map[string]bool{}
	for _, p := range f.report.Probes {
		probeCodes[p.Code] = true
		if p.Code != "request_malformed" && p.Code != "headers_too_large" {
			identifiedProbes++
		}
	}
	unidentified := unauthenticated + probes - identifiedProbes
	// Calls under the demo's task after its end are refused before policy.
	taskEnded := 0
	for _, s := range f.report.Task.Steps {
		if s.Code == "task_ended" {
			taskEnded++
		}
	}
	if taskEnded > 0 {
		probeCodes["task_ended"] = true
	}
	// The fixture's decisions are acme's shadow hits and the quoted tenant's one.
	acmeDecisions := countCalls(of("acme")) + f.shadowHits + identifiedProbes
	acmeDenied := countCalls(and(of("acme"), not(allowed))) + identifiedProbes
	sessionCalls := countCalls(inSession)
	agentRows := distinct(of("acme"), func(r workload.Result) string {
		return actor(r) + "\x00" + r.Call.Caller.Principal + "\x00" + r.Call.Caller.Session
	}) + 1 + identifiedProbes
	researcherCalls := and(of("acme"), byActor(researcher))

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
	itoa := strconv.Itoa
	alerts := f.alertEvents()
	sessionIDs := map[string]bool{}
	sessionEvents := 0
	for _, e := range f.published {
		if e.Tenant == "acme" && e.Identity != nil && e.Identity.SessionID == acmeSession {
			sessionIDs[e.ID] = true
			sessionEvents++
		}
	}
	sessionAlerts := countAlerts(alerts, func(a *event.Alert) bool {
		return slices.ContainsFunc(a.Evidence, func(id string) bool { return sessionIDs[id] })
	})
	topRows := func(col string, want [][]string) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			t.Helper()
			var got [][]string
			for _, row := range r.rows {
				got = append(got, []string{row[r.col(t, "tenant")], row[r.col(t, col)], row[r.col(t, "alerts")]})
			}
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("got %v, want %v", got, want)
			}
		}
	}
	scope, bnd, sess, integ := build.ScopeUID+"/", build.BoundaryUID+"/", build.SessionUID+"/", build.IntegrityUID+"/"
	return map[string]func(*testing.T, result){
		// Scope violations: every alert in the stream, the demo's
		// correlator's and the fixture's, counted here from what was
		// published.
		scope + "Alerts over time by rule and severity/all": sum("alerts", len(alerts)),
		scope + "Open critical alerts/all":                  sum("critical", countAlerts(alerts, func(a *event.Alert) bool { return a.Severity == event.SeverityCritical })),
		scope + "Top agents by alerts/all":                  topRows("agent", top(alerts, "actor", 10)),
		scope + "Top principals by alerts/all":              topRows("principal", top(alerts, "subject", 10)),
		scope + "Alerts/all":                                all(rows(min(500, len(alerts))), cell("alert_id", f.alertIDs["acme bypass"], "severity", "critical")),
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
		bnd + "Decisions over time by effect and tenant/acme": sum("decisions", acmeDecisions+unidentified),
		bnd + "Denials by rule and code/all": all(sum("denials", denied),
			count("rule_id", "deny-shell", 2), sumWhere("rule_id", "deny-shell", "denials", countCalls(and(not(unauth), tool("shell"), not(allowed)))),
			sumWhere("caller_tenant", "(unidentified)", "denials", unauthenticated+probes-identifiedProbes)),
		bnd + "Denials by rule and code/acme": all(sum("denials", acmeDenied+unidentified),
			cell("rule_id", "deny-shell", "denials", itoa(countCalls(and(of("acme"), tool("shell")))))),
		bnd + "Refusals before policy (identity, schema, request)/all": all(rows(1+len(probeCodes)),
			cell("code", "token_missing", "refusals", itoa(unauthenticated)),
			cell("code", "token_missing", "stage", "identity"),
			cell("code", "path_invalid", "stage", "request")),
		bnd + "Refusals before policy (identity, schema, request)/acme": sum("refusals", unauthenticated+probes+taskEnded),
		bnd + "Top tools/all": all(cell("tool", "shell", "denied", itoa(countCalls(and(not(unauth), tool("shell"), not(allowed))))),
			cell("tool", "read_file", "allowed", itoa(countCalls(and(not(unauth), tool("read_file"), allowed)))),
			cell("tool", "fetch_url", "allowed", itoa(f.shadowHits))),
		bnd + "Top tools/acme": all(cell("tool", "shell", "denied", itoa(countCalls(and(of("acme"), tool("shell"), not(allowed))))),
			cell("tool", "read_file", "allowed", itoa(countCalls(and(of("acme"), tool("read_file"), allowed))))),
		bnd + "Top destinations/all":  all(cell("host", "web.example", "allowed", itoa(f.shadowHits)), cell("host", "web.example", "destination", "internet")),
		bnd + "Top destinations/acme": all(cell("host", "web.example", "allowed", itoa(f.shadowHits)), cell("host", "web.example", "destination", "internet")),
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
		// Every event of the session, as published (the first tools/list of
		// the run pins the tools' schemas in whichever session it came, and
		// the correlator's alerts carry their session).
		sess + "Session timeline/session": all(rows(sessionEvents), count("kind", "request", sessionCalls), count("kind", "decision", sessionCalls),
			count("kind", "response", countCalls(and(inSession, allowed))), count("effect", "deny", countCalls(and(inSession, not(allowed))))),
		sess + "Session timeline/researcher": rows(sessionEvents),
		sess + "Delegation chains in the session/session": all(rows(distinct(inSession, chainOf)), sum("decisions", sessionCalls),
			cell("chain", "agent:planner > agent:researcher > agent:unknown", "denied", "1")),
		sess + "Delegation chains in the session/researcher": rows(distinct(inSession, chainOf)),
		sess + "Alerts of the session/session":               rows(sessionAlerts),
		sess + "Alerts of the session/researcher":            rows(sessionAlerts),
		// Three acting agents per session; the fixture's own decisions act
		// as the user; the identified probe is the planner's, in no session.
		sess + "Agent activity across sessions and principals/session": all(rows(agentRows), sum("decisions", acmeDecisions)),
		sess + "Agent activity across sessions and principals/researcher": all(rows(distinct(researcherCalls, func(r workload.Result) string { return r.Call.Caller.Session })),
			sum("decisions", countCalls(researcherCalls)), sum("denied", countCalls(and(researcherCalls, not(allowed))))),
		sess + "Agent decisions over time/session":    sum("decisions", acmeDecisions),
		sess + "Agent decisions over time/researcher": sum("decisions", countCalls(researcherCalls)),

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
		"rule/rampart-alert-high": all(rows(distinctAlerts(alerts, func(a *event.Alert) bool {
			return a.Severity == event.SeverityHigh || a.Severity == event.SeverityCritical
		}, true)), count("rule_id", "boundary-bypass", 1), count("rule_id", "exfil-after-deny", 1)),
		"rule/rampart-alert-bypass": all(rows(distinctAlerts(alerts, func(a *event.Alert) bool {
			return slices.Contains(a.Tags, "boundary-bypass") || strings.Contains(a.RuleID, "bypass")
		}, false)), cell("rule_id", "boundary-bypass", "tenant", "acme")),
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

// alertEvents are the alerts published to the stream.
func (f *fixture) alertEvents() []*event.Event {
	var out []*event.Event
	for _, e := range f.published {
		if e.Kind == event.KindAlert {
			out = append(out, e)
		}
	}
	return out
}

func countAlerts(alerts []*event.Event, keep func(*event.Alert) bool) int {
	n := 0
	for _, e := range alerts {
		if keep(e.Alert) {
			n++
		}
	}
	return n
}

// distinctAlerts counts the (tenant, rule[, severity]) groups of kept alerts:
// one row each in an alert rule's query.
func distinctAlerts(alerts []*event.Event, keep func(*event.Alert) bool, bySeverity bool) int {
	seen := map[string]bool{}
	for _, e := range alerts {
		if keep(e.Alert) {
			k := e.Tenant + "\x00" + e.Alert.RuleID
			if bySeverity {
				k += "\x00" + string(e.Alert.Severity)
			}
			seen[k] = true
		}
	}
	return len(seen)
}

func groupValue(a *event.Alert, field string) string {
	for _, g := range a.Group {
		if g.Field == field {
			return g.Value
		}
	}
	return ""
}

// top ranks alerts by tenant and one group field's value, most first, then
// by tenant and value: the panels' order.
func top(alerts []*event.Event, field string, limit int) [][]string {
	type key struct{ tenant, value string }
	counts := map[key]int{}
	for _, e := range alerts {
		counts[key{e.Tenant, groupValue(e.Alert, field)}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if counts[a] != counts[b] {
			return counts[a] > counts[b]
		}
		if a.tenant != b.tenant {
			return a.tenant < b.tenant
		}
		return a.value < b.value
	})
	var out [][]string
	for _, k := range keys[:min(limit, len(keys))] {
		out = append(out, []string{k.tenant, k.value, strconv.Itoa(counts[k])})
	}
	return out
}
