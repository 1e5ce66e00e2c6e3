package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/internal/demo"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// sessionsPerTenant sizes the demo workload the fixture is made of.
const sessionsPerTenant = 2

// fixture is the record the dashboards are tested against, in ClickHouse
// 18.16 and in chDB: the demo's workload through the real pipeline
// (enforcer, JetStream, collector, correlator), plus events of the kinds
// the demo does not make — alerts of chosen severities, a checkpoint
// declaring an unrecorded event, a gap in a chain, shadow-rule hits —
// published to JetStream and stored by a real collector.
type fixture struct {
	report     *demo.Report
	server     *chstore.Client // ClickHouse 18.16
	httpAddr   string          // its HTTP interface, for result types
	chdb       *chdbtest.Engine
	chdbDB     string
	from, to   time.Time
	alertIDs   map[string]string // name -> alert id
	synthetic  int               // decision events added beside the demo's
	shadowHits int               // of them, acme's fetch_url calls hitting the shadow rule
	// published is every event in the stream, read back from JetStream:
	// what the alert expectations are computed from, independently of
	// storage (the demo's correlator raises alerts of its own).
	published []*event.Event
}

// Names of the fixture's own events.
const (
	gapInstance   = "enf-fixture"
	alertInstance = "correlator-fixture"
	shadowRule    = "audit-internet-egress"
	fixtureSess   = "fixture-sess"
	quotedTenant  = "o'brien"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns := natstest.Run(t)
	addr, srv := chtest.Server(t)
	httpAddr := os.Getenv("RAMPART_CLICKHOUSE_HTTP_ADDR")
	if srv != nil {
		httpAddr = srv.HTTPAddr
	}
	if httpAddr == "" {
		t.Fatal("the ClickHouse server's HTTP address is needed for result types: set RAMPART_CLICKHOUSE_HTTP_ADDR")
	}
	db := fmt.Sprintf("rampart_dash_%d", time.Now().UnixNano())
	start := time.Now().UTC().Truncate(time.Second)
	rep, err := demo.Run(ctx, demo.Options{NATSURL: ns.URL(), ClickHouseAddr: addr, Database: db,
		SessionsPerTenant: sessionsPerTenant, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	cfg := chstore.Defaults()
	cfg.Addr, cfg.HTTPAddr, cfg.Database = chstore.AddrList(addr), chstore.AddrList(httpAddr), db
	server, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); server.Close() })
	f := &fixture{report: rep, server: server, httpAddr: httpAddr, from: start.Add(-time.Minute), alertIDs: map[string]string{}}

	extra := f.extraEvents(ctx, t)
	f.collect(ctx, t, ns, cfg, extra)
	f.published = readStream(ctx, t, ns)
	f.to = time.Now().UTC().Add(time.Minute)
	f.chdb, f.chdbDB = chdbtest.New(t)
	// The views (events, sessions, alerts) are the migrations' own.
	for _, table := range []string{"events_raw", "sessions_raw"} {
		f.copyToCHDB(ctx, t, table)
	}
	return f
}

// extraEvents builds the fixture's own events: a chain with a gap and a
// checkpoint, decisions with a shadow rule, and alerts whose evidence is
// the demo's own stored events.
func (f *fixture) extraEvents(ctx context.Context, t *testing.T) []*event.Event {
	t.Helper()
	now := time.Now().UTC()
	ids := &event.IDSource{}
	var out []*event.Event
	principal := &event.Identity{Subject: "user:u1@acme.example", Issuer: "https://idp.demo.rampart.local", SessionID: fixtureSess, SessionSource: "token"}
	// seq 3 unrecorded (the checkpoint says so), seq 6 simply missing.
	for _, seq := range []uint64{1, 2, 4, 7} {
		e := &event.Event{V: event.Version, ID: ids.New(now), Kind: event.KindDecision, Time: now, Tenant: "acme",
			Instance: gapInstance, Epoch: "ep-1", Seq: seq, RequestID: fmt.Sprintf("fixture-req-%d", seq), Identity: principal,
			Request:  &event.Request{Method: "POST", Host: "web.example", Path: "/mcp", RPCMethod: "tools/call", Tool: "fetch_url", Destination: "internet"},
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "demo", RuleID: "allow-fetch", PolicyHash: "sha256:00", Shadow: []string{shadowRule}}}
		out = append(out, e)
		f.synthetic++
		f.shadowHits++
	}
	// A tenant whose name needs quoting: a variable interpolated without
	// escaping breaks every query once it is selected, or listed by All.
	out = append(out, &event.Event{V: event.Version, ID: ids.New(now), Kind: event.KindDecision, Time: now, Tenant: quotedTenant,
		Instance: "enf-quoted", Epoch: "ep-q", Seq: 1, RequestID: "fixture-quoted",
		Identity: &event.Identity{Subject: "user:o@obrien.example", Issuer: "https://idp.obrien.example"},
		Request:  &event.Request{Method: "POST", Host: "tools.obrien.example", Path: "/mcp", RPCMethod: "tools/call", Tool: "lookup"},
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "obrien", RuleID: "allow-lookup", PolicyHash: "sha256:01"}})
	f.synthetic++
	out = append(out, &event.Event{V: event.Version, ID: ids.New(now), Kind: event.KindCheckpoint, Time: now, Tenant: "acme",
		Instance: gapInstance, Epoch: "ep-1", Seq: 5, Checkpoint: &event.Checkpoint{KeyID: "fixture-key", Signature: "c2ln", Unrecorded: []uint64{3}}})

	// Evidence: the first two denied calls of the researcher agent in each
	// tenant's first session.
	evidence := func(tenant string) ([]string, time.Time, time.Time) {
		rows, err := f.serverQuery(ctx, "SELECT event_id, toUnixTimestamp(event_time) FROM events WHERE kind = 'decision' AND effect = 'deny' AND tenant = '"+
			tenant+"' AND session_id = '"+tenant+"-sess-1' AND actor = 'agent:researcher' ORDER BY event_time_us, seq")
		if err != nil || len(rows) < 2 {
			t.Fatalf("evidence of %s: %v %v", tenant, rows, err)
		}
		first, _ := strconv.ParseInt(rows[0][1], 10, 64)
		last, _ := strconv.ParseInt(rows[1][1], 10, 64)
		return []string{rows[0][0], rows[1][0]}, time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC()
	}
	seq := uint64(0)
	alert := func(name, tenant, rule string, sev event.Severity, tags []string, group []event.GroupValue, ev []string, first, last time.Time) {
		seq++
		e := &event.Event{V: event.Version, ID: ids.New(last), Kind: event.KindAlert, Time: last, Tenant: tenant,
			Instance: alertInstance, Epoch: "ep-c", Seq: seq, Alert: &event.Alert{RuleID: rule, Title: name, Severity: sev, Tags: tags,
				Group: group, First: first, Last: last, Count: len(ev), Evidence: ev}}
		f.alertIDs[name] = e.ID
		out = append(out, e)
	}
	acme, af, al := evidence("acme")
	globex, gf, gl := evidence("globex")
	alert("acme exfiltration", "acme", "exfil-after-deny", event.SeverityHigh, []string{"owasp-agentic:T2"},
		[]event.GroupValue{{Field: "subject", Value: "user:u1@acme.example"}, {Field: "actor", Value: "agent:researcher"}}, acme, af, al)
	alert("acme bypass", "acme", "boundary-bypass", event.SeverityCritical, []string{"boundary-bypass"},
		[]event.GroupValue{{Field: "subject", Value: "user:u1@acme.example"}}, acme[:1], af, af)
	alert("globex exfiltration", "globex", "exfil-after-deny", event.SeverityMedium, nil,
		[]event.GroupValue{{Field: "subject", Value: "user:u1@globex.example"}, {Field: "actor", Value: "agent:researcher"}}, globex, gf, gl)
	return out
}

// collect publishes events to JetStream and runs a collector until
// ClickHouse holds them.
func (f *fixture) collect(ctx context.Context, t *testing.T, ns *natstest.Server, chCfg chstore.Config, events []*event.Event) {
	t.Helper()
	js := ns.JetStream()
	ccfg := collector.Defaults()
	ccfg.NATSURL, ccfg.ClickHouse, ccfg.Deliver = stream.URLs(ns.URL()), chCfg, stream.DeliverNew
	ccfg.Consumer = "dashboards-fixture"
	ccfg.BatchWait = 100 * time.Millisecond
	col, err := collector.New(ctx, ccfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	runCtx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return col.Run(gctx) })
	defer func() { stop(); _ = g.Wait() }()
	for _, e := range events {
		subj, err := subject.For(e.Tenant, string(e.Kind))
		if err != nil {
			t.Fatal(err)
		}
		body, err := event.AppendMessage(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subj, body, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, e := range events {
		ids = append(ids, "'"+e.ID+"'")
	}
	q := "SELECT count() FROM events WHERE event_id IN (" + strings.Join(ids, ",") + ")"
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows, err := f.serverQuery(ctx, q)
		if err == nil && len(rows) == 1 && rows[0][0] == strconv.Itoa(len(events)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector stored %v of %d events (%v)", rows, len(events), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readStream decodes every event of the events stream, in stream order.
func readStream(ctx context.Context, t *testing.T, ns *natstest.Server) []*event.Event {
	t.Helper()
	js := ns.JetStream()
	c, err := js.OrderedConsumer(ctx, stream.Events, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	last := info.CachedInfo().State.LastSeq
	var out []*event.Event
	for seq := uint64(0); seq < last; {
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			seq = md.Sequence.Stream
			events, err := event.DecodeMessageOn(m.Subject(), m.Data())
			if err != nil {
				continue // dead-lettered by the collector, stored by nobody
			}
			out = append(out, events...)
		}
		if n == 0 {
			t.Fatalf("stream read stopped at %d of %d", seq, last)
		}
	}
	return out
}

// copyToCHDB copies a table from the 18.16 server to chDB, through the
// server's HTTP interface as JSONEachRow.
func (f *fixture) copyToCHDB(ctx context.Context, t *testing.T, table string) {
	t.Helper()
	cols, err := f.serverQuery(ctx, "DESCRIBE TABLE "+table)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cols {
		names = append(names, c[0])
	}
	body, err := f.http(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+table+" FORMAT JSONEachRow", "output_format_json_quote_64bit_integers=0")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(body) == "" {
		t.Fatalf("%s: no rows to copy", table)
	}
	if err := f.chdb.Exec(ctx, "INSERT INTO "+f.chdbDB+"."+table+" ("+strings.Join(names, ", ")+") FORMAT JSONEachRow\n"+body); err != nil {
		t.Fatalf("copy %s to chDB: %v", table, err)
	}
}

// serverQuery runs a query on the 18.16 server in the fixture's database.
func (f *fixture) serverQuery(ctx context.Context, query string) ([][]string, error) {
	r, err := f.serverResult(ctx, query)
	return r.rows, err
}

// serverResult runs a query on the 18.16 server in the fixture's database
// (as the datasource's defaultDatabase makes it for Grafana), with the
// result's names and types, each value formatted as chstore formats it.
func (f *fixture) serverResult(ctx context.Context, query string) (result, error) {
	body, err := f.http(ctx, query+"\nFORMAT JSONCompact", "output_format_json_quote_64bit_integers=0")
	if err != nil {
		return result{}, err
	}
	var out struct {
		Meta []struct{ Name, Type string } `json:"meta"`
		Data [][]any                       `json:"data"`
	}
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return result{}, fmt.Errorf("decode %q: %w", body, err)
	}
	var r result
	for _, m := range out.Meta {
		r.names, r.types = append(r.names, m.Name), append(r.types, m.Type)
	}
	for _, row := range out.Data {
		cells := make([]string, len(row))
		for i, c := range row {
			if list, ok := c.([]any); ok {
				ss := make([]string, len(list))
				for j, x := range list {
					ss[j] = fmt.Sprint(x)
				}
				cells[i] = chstore.FormatValue(ss)
			} else {
				cells[i] = chstore.FormatValue(c)
			}
		}
		r.rows = append(r.rows, cells)
	}
	return r, nil
}

// http runs a query on the 18.16 server's HTTP interface in the fixture's database.
func (f *fixture) http(ctx context.Context, query string, settings ...string) (string, error) {
	u := "http://" + f.httpAddr + "/?database=" + url.QueryEscape(f.server.Database())
	for _, s := range settings {
		u += "&" + s
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(query))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}
