package demo_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/internal/demo"
	"github.com/rampart-io/rampart/internal/pipeline"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// TestEndToEnd sends the demo workload through the real pipeline — embedded
// JetStream, the enforcer, the collector, the correlator and a real
// ClickHouse server — and checks every event and session row it left.
func TestEndToEnd(t *testing.T) {
	addr, _ := chtest.Server(t)
	const sessions = 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := demo.Run(ctx, demo.Options{ClickHouseAddr: addr, Database: "rampart_e2e", SessionsPerTenant: sessions, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The demo ran the pipeline `rampart run` runs: the embedded JetStream
	// and the three components, composed by package pipeline.
	if want := []string{pipeline.ActorNATS, pipeline.ActorEnforcer, pipeline.ActorCollector, pipeline.ActorCorrelator}; !slices.Equal(rep.Actors, want) {
		t.Fatalf("demo actors %q, want %q", rep.Actors, want)
	}
	ch := chtest.Open(t, addr) // a client; its own fresh database stays unused
	db := rep.Database
	n := len(rep.Results)
	incident := len(demo.Incident())
	if want := len(demo.Tenants)*(sessions*8+1) + incident; n != want {
		t.Fatalf("%d calls, want %d", n, want)
	}

	// Every call reached the client with the status the policy implies.
	var allowedIDs []string
	for i, r := range rep.Results {
		if r.Status != r.Call.Want {
			t.Errorf("call %d (%s %s): status %d, want %d", i, r.Call.Caller.Tenant, r.Call.Tool, r.Status, r.Call.Want)
		}
		if r.RequestID == "" {
			t.Errorf("call %d: no request id returned", i)
		}
		if r.Status == http.StatusOK {
			allowedIDs = append(allowedIDs, r.RequestID)
		}
	}
	// The backend saw exactly the allowed requests and the simulated
	// bypass (no request id), nothing else: the workload's, and the task's
	// calls before its end.
	for _, st := range rep.Task.Steps {
		if st.Handed != "" {
			allowedIDs = append(allowedIDs, st.RequestID)
		}
	}
	seen := slices.Clone(rep.BackendSeen)
	if i := slices.Index(seen, ""); i < 0 {
		t.Fatalf("the backend never saw the bypass: %q", seen)
	} else {
		seen = slices.Delete(seen, i, i+1)
	}
	slices.Sort(seen)
	slices.Sort(allowedIDs)
	if !slices.Equal(seen, allowedIDs) {
		t.Fatalf("backend saw %d requests %v, allowed were %d %v", len(seen), seen, len(allowedIDs), allowedIDs)
	}

	// The probes were refused, each for its own reason, and recorded.
	wantProbes := []string{"request_malformed", "headers_too_large", "path_invalid"}
	if len(rep.Probes) != len(wantProbes) {
		t.Fatalf("probes %+v", rep.Probes)
	}
	for i, p := range rep.Probes {
		if p.Code != wantProbes[i] || p.Status < 400 || p.Status >= 500 || p.RequestID == "" {
			t.Errorf("probe %q: %d %s %q, want code %s", p.Name, p.Status, p.Code, p.RequestID, wantProbes[i])
		}
	}

	// Exactly N request and N decision events, one of each per request id,
	// and one of each per probe.
	q := func(sql string) [][]string {
		t.Helper()
		rows, err := ch.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return rows
	}
	counts := q(fmt.Sprintf(`SELECT kind, count(), uniqExact(request_id) FROM %s.events
WHERE kind IN ('request', 'decision', 'response') GROUP BY kind ORDER BY kind`, db))
	np := n + len(rep.Probes) + len(rep.Task.Steps)
	wantCounts := [][]string{
		{"decision", strconv.Itoa(np), strconv.Itoa(np)},
		{"request", strconv.Itoa(np), strconv.Itoa(np)},
		{"response", strconv.Itoa(len(allowedIDs)), strconv.Itoa(len(allowedIDs))},
	}
	if !slices.EqualFunc(counts, wantCounts, slices.Equal) {
		t.Fatalf("events by kind = %q, want %q", counts, wantCounts)
	}
	if dup := q("SELECT count() - uniqExact(event_id) FROM " + db + ".events_raw"); dup[0][0] != "0" {
		t.Fatalf("events_raw holds %s duplicate rows", dup[0][0])
	}

	// Each decision carries the right tenant, identity, chain, tool and rule.
	rows := q(fmt.Sprintf(`SELECT request_id, tenant, subject, arrayStringConcat(chain_subjects, '>'), actor, session_id,
    rpc_method, tool, effect, rule_id, policy_id, policy_hash, args_digest, code, instance, seq
FROM %s.events WHERE kind = 'decision'`, db))
	byID := map[string][]string{}
	for _, r := range rows {
		byID[r[0]] = r
	}
	for i, p := range rep.Probes {
		if d, ok := byID[p.RequestID]; !ok || d[8] != "deny" || d[13] != wantProbes[i] {
			t.Errorf("probe %q recorded as %q", p.Name, d)
		}
	}
	for _, r := range rep.Results {
		d, ok := byID[r.RequestID]
		if !ok {
			t.Fatalf("no decision for request %s", r.RequestID)
		}
		c := r.Call
		effect := "deny"
		if r.Status == http.StatusOK {
			effect = "allow"
		}
		if d[1] != c.Caller.Tenant && !c.NoToken || d[8] != effect {
			t.Errorf("request %s: tenant %q effect %q, want %q %q", r.RequestID, d[1], d[8], c.Caller.Tenant, effect)
		}
		if c.NoToken {
			if d[1] != "" || d[13] == "" {
				t.Errorf("unauthenticated request %s: tenant %q code %q, want no tenant and an error code", r.RequestID, d[1], d[13])
			}
			continue
		}
		wantChain := strings.Join(c.Caller.Actors, ">")
		if d[2] != c.Caller.Principal || d[3] != wantChain || d[4] != c.Caller.Actors[len(c.Caller.Actors)-1] || d[5] != c.Caller.Session {
			t.Errorf("request %s: identity %q, want principal %s chain %s session %s", r.RequestID, d[2:6], c.Caller.Principal, wantChain, c.Caller.Session)
		}
		if d[6] != c.RPCMethod || d[7] != c.Tool || d[9] != c.WantRule || d[10] != "demo" || !strings.HasPrefix(d[11], "sha256:") {
			t.Errorf("request %s: %q, want rpc %s tool %s rule %s", r.RequestID, d[6:12], c.RPCMethod, c.Tool, c.WantRule)
		}
		if c.Tool != "" && !strings.HasPrefix(d[12], "sha256:") {
			t.Errorf("request %s: args digest %q", r.RequestID, d[12])
		}
	}

	// The stored chains are whole: nothing deleted, edited or out of place.
	// Two: the enforcer's, and the correlator's (its rule load, its alerts).
	vr, err := verify.Run(ctx, ch.WithDatabase(db), verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two chains: the enforcer's, and the correlator's alerts and rule loads.
	if len(vr.Findings) != 0 || vr.Chains != 2 || vr.Events < 2*np+len(allowedIDs) {
		t.Fatalf("verify: %+v", vr.Report)
	}

	// The correlator derived one row per session with the right links and counts.
	srows := q(forensic.Sessions(db))
	if len(srows) != sessions*len(demo.Tenants) {
		t.Fatalf("%d session rows, want %d", len(srows), sessions*len(demo.Tenants))
	}
	for _, s := range srows {
		tenant, id := s[0], s[1]
		wantPrincipal := fmt.Sprintf("user:u%s@%s.example", strings.TrimPrefix(id, tenant+"-sess-"), tenant)
		counts := []string{"8", "4", "4", "4"} // requests, allowed, denied, responses
		if tenant+"/"+id == "acme/"+rep.TimelineSession {
			counts = []string{"13", "5", "8", "5"} // and the incident: one read allowed, four calls denied
		}
		if s[2] != wantPrincipal || s[3] != "['agent:planner','agent:researcher','agent:unknown']" ||
			s[4] != fmt.Sprintf("['%s','agent:planner','agent:researcher','agent:unknown']", wantPrincipal) ||
			!slices.Equal(s[7:11], counts) {
			t.Errorf("session row %q", s)
		}
	}
	exchanges := 0
	for _, row := range rep.Timeline {
		switch row[2] {
		case "request", "decision", "response":
			exchanges++
		case "tool_schema": // the backend's tool listing, pinned on first sight
		case "alert": // the incident's, raised in this session
		case "credential": // the task credential minted for its read_file calls
		case "backend_request": // the file store's reports of its read_file calls
		default:
			t.Errorf("unexpected %s event in the timeline", row[2])
		}
	}
	if want := (8+incident)*2 + 4 + 1; exchanges != want {
		t.Errorf("timeline of %s has %d request/decision/response events, want %d", rep.TimelineSession, exchanges, want)
	}
	checkIncidentAlerts(t, rep)
	checkBypass(t, rep, q(fmt.Sprintf(`SELECT request_id, jti, status, code, instance FROM %s.backend_requests ORDER BY event_time_us`, db)))
	checkCredentials(t, rep, q(fmt.Sprintf(`SELECT request_id, decision_credential_jti FROM %s.events
WHERE kind = 'decision' AND tool = 'read_file' AND effect = 'allow'`, db)))
	checkTask(t, rep, byID)
}

// checkTask checks the declared task's life: its calls reached the backend
// with credentials minted for it, the undeclared tool was refused as out
// of scope, the completion revoked every credential issued under it, and
// the call after the end was refused task_ended and never forwarded.
func checkTask(t *testing.T, rep *demo.Report, decisions map[string][]string) {
	t.Helper()
	tr := rep.Task
	wantCodes := []string{"", "", "", "task_scope_violation", "", "task_ended"}
	if tr == nil || len(tr.Steps) != len(wantCodes) {
		t.Fatalf("task run %+v", tr)
	}
	for i, st := range tr.Steps {
		if st.Status != st.Want || st.Code != wantCodes[i] {
			t.Errorf("task step %q: %d %q, want %d %q", st.What, st.Status, st.Code, st.Want, wantCodes[i])
		}
		forwarded := st.What == "read_file /board/q3.pdf" || st.What == "read_file /board/q3-minutes.pdf"
		if forwarded != (st.Handed == demo.CredentialIssuer) {
			t.Errorf("task step %q: backend handed a token of %q", st.What, st.Handed)
		}
		if d, ok := decisions[st.RequestID]; !ok || d[13] != wantCodes[i] {
			t.Errorf("task step %q recorded as %q", st.What, d)
		}
	}
	issued, revoked := map[string]bool{}, map[string]string{}
	for _, c := range tr.Credentials {
		switch c[1] {
		case "issued":
			issued[c[3]] = true
		case "revoked":
			revoked[c[3]] = c[2]
		}
	}
	if len(issued) == 0 || len(revoked) != len(issued) {
		t.Fatalf("task credentials %q: want each issued one revoked", tr.Credentials)
	}
	for j := range issued {
		if revoked[j] != "completed" {
			t.Errorf("credential %s revoked for %q, want completed", j, revoked[j])
		}
	}
}

// checkCredentials checks every allowed read_file reached the backend with
// a task credential recorded on its decision, and no other call did.
func checkCredentials(t *testing.T, rep *demo.Report, decisions [][]string) {
	t.Helper()
	reads := 0
	for _, r := range rep.Results {
		if r.Status == http.StatusOK && r.Call.Tool == "read_file" {
			reads++
		}
	}
	if rep.Handed["read_file credential"] != reads || rep.Handed["read_file own"] != 0 || reads == 0 {
		t.Errorf("read_file: %d allowed, handed %v", reads, rep.Handed)
	}
	for k, n := range rep.Handed {
		if strings.HasSuffix(k, " credential") && k != "read_file credential" {
			t.Errorf("%d %s calls got a credential they were not configured for", n, k)
		}
	}
	issued := map[string]bool{}
	for _, c := range rep.Credentials {
		issued[c[6]] = true
	}
	if len(decisions) != reads+rep.Task.Forwarded() {
		t.Fatalf("%d read_file decisions allowed, want %d", len(decisions), reads)
	}
	for _, d := range decisions {
		if !issued[d[1]] {
			t.Errorf("decision of %s carries credential %q, which no credential event issued (%d issued)", d[0], d[1], len(issued))
		}
	}
}

// checkBypass checks the file store reported every read_file it served
// (each naming its request and credential) and the replayed credential
// without a request id, served because it is valid, and that the
// bypass raised its critical alert in acme citing that report.
func checkBypass(t *testing.T, rep *demo.Report, reports [][]string) {
	t.Helper()
	reads := 0
	for _, r := range rep.Results {
		if r.Status == http.StatusOK && r.Call.Tool == "read_file" {
			reads++
		}
	}
	for _, st := range rep.Task.Steps {
		if st.Handed != "" {
			reads++ // the declared task's reads, forwarded before its end
		}
	}
	if len(reports) != reads+1 {
		t.Fatalf("%d file store reports, want %d reads and the bypass: %q", len(reports), reads, reports)
	}
	var bypass []string
	for _, r := range reports {
		if r[4] != "backend:"+demo.CredentialAudience || r[1] == "" || r[2] != "200" {
			t.Errorf("file store report %q", r)
		}
		if r[0] == "" {
			bypass = r
		}
	}
	if rep.Bypass.Status != http.StatusOK || bypass == nil {
		t.Fatalf("bypass %+v, reported %q", rep.Bypass, bypass)
	}
	for _, e := range rep.Evidence {
		if e.Alert[3] != demo.BypassAlert {
			continue
		}
		if e.Alert[1] != "acme" || e.Alert[2] != "critical" || len(e.Events) != 1 || e.Events[0][1] != "backend_request" || e.Events[0][9] != "" {
			t.Fatalf("bypass alert %q cites %q", e.Alert, e.Events)
		}
		return
	}
	t.Fatalf("no %s alert with evidence: alerts %q", demo.BypassAlert, rep.Alerts)
}

// checkIncidentAlerts checks the incident raised its alerts in acme, each
// citing exactly the incident's decisions that make its pattern.
func checkIncidentAlerts(t *testing.T, rep *demo.Report) {
	t.Helper()
	incident := rep.Results[len(rep.Results)-len(demo.Incident()):]
	requestOf := func(tools ...string) []string {
		var ids []string
		for _, tool := range tools {
			for _, r := range incident {
				if r.Call.Tool == tool {
					ids = append(ids, r.RequestID)
				}
			}
		}
		return ids
	}
	// The evidence each alert must cite, as request ids of the incident's
	// calls; probing also counts the researcher's earlier denials, so only
	// its incident part is required.
	want := map[string]struct {
		group   string
		cites   []string
		exactly bool
	}{
		"exfiltration-blocked": {"subject=" + demo.Incident()[0].Caller.Principal, requestOf("read_file", "http_post"), true},
		"probing-denied-tools": {"actor=agent:researcher", requestOf("http_post", "delete_records", "list_secrets"), false},
	}
	found := map[string]bool{}
	for _, e := range rep.Evidence {
		rule, w := e.Alert[3], want[e.Alert[3]]
		if w.cites == nil || e.Alert[1] != "acme" {
			continue
		}
		found[rule] = true
		if e.Alert[5] != w.group {
			t.Errorf("%s: group %q, want %q", rule, e.Alert[5], w.group)
		}
		var cited []string
		for _, ev := range e.Events {
			if ev[1] != "decision" {
				t.Errorf("%s cites a %s event", rule, ev[1])
			}
			cited = append(cited, ev[9])
		}
		if w.exactly && !slices.Equal(cited, w.cites) {
			t.Errorf("%s cites requests %q, want %q", rule, cited, w.cites)
		}
		for _, id := range w.cites {
			if !slices.Contains(cited, id) {
				t.Errorf("%s does not cite request %s: %q", rule, id, cited)
			}
		}
	}
	for _, rule := range demo.ExpectedAlerts {
		if !found[rule] {
			t.Errorf("no %s alert with evidence in acme: alerts %q", rule, rep.Alerts)
		}
	}
	// The report's investigation of the compromised agent reaches what the
	// incident touched and the alerts it raised.
	inv := rep.Investigation
	if inv == nil || inv.Section("tools") == nil || inv.Section("alerts") == nil {
		t.Fatalf("investigation %+v", inv)
	}
	tools := map[string][]string{}
	for _, r := range inv.Section("tools").Rows {
		tools[r[0]] = r[1:]
	}
	if got := tools["http_post"]; !slices.Equal(got, []string{"0", "1"}) {
		t.Errorf("blast radius: http_post allowed/denied %q, want 0 and 1: %q", got, inv.Section("tools").Rows)
	}
	raised := map[string]bool{}
	for _, r := range inv.Section("alerts").Rows {
		raised[r[2]] = true
	}
	for _, rule := range demo.ExpectedAlerts {
		if !raised[rule] {
			t.Errorf("blast radius lists no %s alert: %q", rule, inv.Section("alerts").Rows)
		}
	}
}

// The demo pointed at servers it did not start: its report covers only its
// own run, and it leaves the shared stream without its consumers.
func TestDemoAgainstExistingServers(t *testing.T) {
	srv := natstest.Run(t)
	addr, _ := chtest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for run := 1; run <= 2; run++ {
		rep, err := demo.Run(ctx, demo.Options{NATSURL: srv.URL(), ClickHouseAddr: addr, Database: "shared_demo", SessionsPerTenant: 1, Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		decisions := ""
		for _, row := range rep.ByKind {
			if row[0] == "decision" {
				decisions = row[1]
			}
		}
		if want := strconv.Itoa(len(rep.Results) + len(rep.Probes) + len(rep.Task.Steps)); decisions != want {
			t.Fatalf("run %d: %q decisions for %d calls and %d probes (kinds %q)", run, decisions, len(rep.Results), len(rep.Probes), rep.ByKind)
		}
		// On a NATS it did not start, the demo runs the components alone.
		if want := []string{pipeline.ActorEnforcer, pipeline.ActorCollector, pipeline.ActorCorrelator}; !slices.Equal(rep.Actors, want) {
			t.Fatalf("run %d: actors %q, want %q", run, rep.Actors, want)
		}
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	for name := range s.ConsumerNames(ctx).Name() {
		t.Errorf("consumer %s left behind", name)
	}
}
