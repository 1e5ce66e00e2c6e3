package chstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// fixture is a small, realistic slice of audit history: two tenants, a
// delegated session with an allowed and a denied call, and a tenant name
// that needs quoting.
func fixture() []*event.Event {
	ids := &event.IDSource{}
	var out []*event.Event
	seq := uint64(0)
	add := func(at time.Duration, tenant, session string, kind event.Kind, tool string, effect event.Effect, rule string, status int) {
		seq++
		e := &event.Event{
			V: event.Version, ID: ids.New(t0.Add(at)), Kind: kind, Time: t0.Add(at), Tenant: tenant,
			Instance: "enf-1", Seq: seq, RequestID: fmt.Sprintf("req-%d", (seq+2)/3),
			Identity: &event.Identity{
				Subject: "user:alice", Issuer: "https://idp.example",
				Chain:     []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:sub"}},
				SessionID: session, TaskID: "task-1",
			},
			Request: &event.Request{Method: "POST", Host: "tools.internal", Path: "/mcp", RPCMethod: "tools/call", Tool: tool, ArgsDigest: "sha256:00"},
		}
		switch kind {
		case event.KindDecision:
			e.Decision = &event.Decision{Effect: effect, PolicyID: "default", RuleID: rule, PolicyHash: "sha256:ab", Reason: "because", EvalNanos: 1500}
		case event.KindResponse:
			e.Response = &event.Response{Status: status, DurationNs: 900000}
		}
		out = append(out, e)
	}
	add(0, "acme", "s-1", event.KindRequest, "search", "", "", 0)
	add(1*time.Millisecond, "acme", "s-1", event.KindDecision, "search", event.EffectAllow, "allow-search", 0)
	add(5*time.Millisecond, "acme", "s-1", event.KindResponse, "search", "", "", 200)
	add(2*time.Second, "acme", "s-1", event.KindRequest, "shell", "", "", 0)
	add(2*time.Second+time.Millisecond, "acme", "s-1", event.KindDecision, "shell", event.EffectDeny, "deny-shell", 0)
	add(3*time.Second, "o'brien\\co", "s-2", event.KindRequest, "search", "", "", 0)
	add(3*time.Second+time.Millisecond, "o'brien\\co", "s-2", event.KindDecision, "search", event.EffectDeny, "default-deny", 0)
	return out
}

// jsonEachRow renders rows for chDB's text insert.
func jsonEachRow(rows [][]any) string { return jsonEachRowOf(ddl.EventColumns, rows) }

// jsonEachRowOf is rows of the columns cols as JSONEachRow.
func jsonEachRowOf(cols []string, rows [][]any) string {
	var b strings.Builder
	for _, r := range rows {
		m := make(map[string]any, len(r))
		for i, v := range r {
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format(time.DateTime)
			}
			m[cols[i]] = v
		}
		line, _ := json.Marshal(m)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSchemaAndForensicQueriesAgreeOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)

	for name, c := range map[string]ddl.Conn{"clickhouse-18": server, "chdb-26": embedded} {
		db := server.Database()
		if name == "chdb-26" {
			db = chdbDB
		}
		again, err := ddl.Migrate(ctx, c, db)
		if err != nil || len(again) != 0 {
			t.Fatalf("%s: second migrate applied %v, err %v; want nothing", name, again, err)
		}
	}

	var rows [][]any
	for _, e := range fixture() {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	// Each row twice: a redelivered batch must not change what analysts see.
	for i := 0; i < 2; i++ {
		if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
			t.Fatal(err)
		}
		insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
		if err := embedded.Exec(ctx, insert); err != nil {
			t.Fatal(err)
		}
	}

	queries := []struct {
		name string
		sql  func(db string) string
		want [][]string
	}{
		{"decision counts", forensic.DecisionCounts, [][]string{
			{"acme", "allow", "1"}, {"acme", "deny", "1"}, {"o'brien\\co", "deny", "1"},
		}},
		{"kind counts", forensic.KindCounts, [][]string{{"decision", "3"}, {"request", "3"}, {"response", "1"}}},
		{"session timeline", func(db string) string { return forensic.SessionTimeline(db, "acme", "s-1") }, nil},
		{"denied by rule, quoted tenant", func(db string) string { return forensic.DeniedByRule(db, "o'brien\\co") }, [][]string{{"default", "default-deny", "1"}}},
		// The fixture reuses req-2 in the other tenant: a request id is looked up across tenants.
		{"one request", func(db string) string { return forensic.Request(db, "req-2") }, [][]string{
			{"1795860002000000", "request", "acme", "s-1", "shell", "", "", "", "0"},
			{"1795860002001000", "decision", "acme", "s-1", "shell", "deny", "deny-shell", "sha256:ab", "0"},
			{"1795860003000000", "request", "o'brien\\co", "s-2", "search", "", "", "", "0"},
		}},
		{"agent activity", func(db string) string {
			return forensic.AgentActivity(db, "acme", "agent:sub", t0, t0.Add(time.Minute))
		}, nil},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			got18, err := server.Query(ctx, q.sql(server.Database()))
			if err != nil {
				t.Fatalf("clickhouse 18: %v", err)
			}
			got26, err := embedded.Query(ctx, q.sql(chdbDB))
			if err != nil {
				t.Fatalf("chdb 26: %v", err)
			}
			if !reflect.DeepEqual(got18, got26) {
				t.Fatalf("engines disagree:\n18.16: %q\n26.x:  %q", got18, got26)
			}
			if q.want != nil && !reflect.DeepEqual(got18, q.want) {
				t.Fatalf("got %q, want %q", got18, q.want)
			}
			if len(got18) == 0 {
				t.Fatal("no rows")
			}
		})
	}

	timeline, _ := server.Query(ctx, forensic.SessionTimeline(server.Database(), "acme", "s-1"))
	if len(timeline) != 5 || timeline[0][3] != "user:alice -> agent:planner -> agent:sub" || timeline[4][7] != "deny-shell" || timeline[2][9] != "200" {
		t.Fatalf("timeline: %q", timeline)
	}
}

// TestForensicTablesUpgradeInPlace builds a database as it was before the
// forensic tables (up to migration 10), stores events, redelivered, then upgrades
// it: the tables must be filled from what was already stored, and the
// queries exact, on both engines.
func TestForensicTablesUpgradeInPlace(t *testing.T) {
	ctx := context.Background()
	addr, _ := chtest.Server(t)
	server := chtest.Open(t, addr)
	embedded, chdbDB := chdbtest.New(t)
	old := map[string]struct {
		c  ddl.Conn
		db string
	}{"clickhouse-18": {server, server.Database() + "_old"}, "chdb-26": {embedded, chdbDB + "_old"}}
	var rows [][]any
	for _, e := range fixture() {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	// The same calls two days earlier, in a tenant of their own: the
	// backfill runs a day at a time and must reach every stored day.
	for _, e := range fixture() {
		e.ID, e.Tenant, e.RequestID, e.Time = e.ID+"-earlier", "earlier", "earlier-"+e.RequestID, e.Time.Add(-49*time.Hour)
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	for name, o := range old {
		t.Cleanup(func() { _ = o.c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+o.db) })
		if _, err := ddl.MigrateTo(ctx, o.c, o.db, 10); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Rows as stored then: the columns the table had at migration 10.
		cols, old := columnsAt(ctx, t, o.c, o.db, rows)
		for i := 0; i < 2; i++ {
			var err error
			if name == "clickhouse-18" {
				err = server.WithDatabase(o.db).Insert(ctx, "events_raw", cols, old)
			} else {
				err = embedded.Exec(ctx, fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", o.db, strings.Join(cols, ", "), jsonEachRowOf(cols, old)))
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		applied, err := ddl.Migrate(ctx, o.c, o.db)
		if err != nil || !slices.Contains(applied, 11) {
			t.Fatalf("%s: upgrade applied %v, err %v", name, applied, err)
		}
		for _, q := range []struct {
			sql  string
			want int
		}{
			{forensic.SessionTimeline(o.db, "acme", "s-1"), 5},
			{forensic.SessionTimeline(o.db, "earlier", "s-1"), 5},
			{forensic.Request(o.db, "req-1"), 3},
			{forensic.AgentActivity(o.db, "acme", "agent:sub", t0, t0.Add(time.Minute)), 5},
		} {
			got, err := o.c.Query(ctx, q.sql)
			if err != nil || len(got) != q.want {
				t.Fatalf("%s: %d rows (%v), want %d:\n%s", name, len(got), err, q.want, q.sql)
			}
		}
		counts, err := o.c.Query(ctx, forensic.DecisionCounts(o.db))
		if want := [][]string{{"acme", "allow", "1"}, {"acme", "deny", "1"}, {"earlier", "allow", "1"}, {"earlier", "deny", "2"}, {"o'brien\\co", "deny", "1"}}; err != nil || !reflect.DeepEqual(counts, want) {
			t.Fatalf("%s: decision counts %q (%v), want %q", name, counts, err, want)
		}
	}
}

// TestQuoteReadsBackOnBothEngines: what forensic.Quote writes, each engine
// reads as the original, and nothing after the literal joins it.
func TestQuoteReadsBackOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, _ := chdbtest.New(t)
	for _, s := range []string{"", "o'brien\\co", `\'`, `'; DROP TABLE x; --`, "a\x00b", "line\nbreak\r\ttab", `\\\'`, "''", "é"} {
		for name, c := range map[string]ddl.Conn{"clickhouse-18": server, "chdb-26": embedded} {
			got, err := c.Query(ctx, "SELECT "+forensic.Quote(s)+", 'after'")
			if err != nil || len(got) != 1 || got[0][0] != s || got[0][1] != "after" {
				t.Errorf("%s: %q read back as %q (%v)", name, s, got, err)
			}
		}
	}
}

// columnsAt are the columns of Events that db's events_raw has, and rows
// (of ddl.EventColumns) cut down to them: rows as an older table stored
// them.
func columnsAt(ctx context.Context, t *testing.T, c ddl.Conn, db string, rows [][]any) ([]string, [][]any) {
	t.Helper()
	have, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = "+forensic.Quote(db)+" AND table = 'events_raw'")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, r := range have {
		in[r[0]] = true
	}
	var cols []string
	var idx []int
	for i, name := range ddl.EventColumns {
		if in[name] {
			cols, idx = append(cols, name), append(idx, i)
		}
	}
	out := make([][]any, len(rows))
	for j, r := range rows {
		for _, i := range idx {
			out[j] = append(out[j], r[i])
		}
	}
	return cols, out
}
