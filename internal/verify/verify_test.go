package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// record publishes n decision events from each instance through real
// JetStream and a real collector into ClickHouse, and returns the epochs.
func record(t *testing.T, natsURL, chAddr string, ch *chstore.Client, keyFile string, n int, instances ...string) map[string]string {
	t.Helper()
	ctx := context.Background()
	epochs := map[string]string{}
	for _, inst := range instances {
		p, err := audit.Connect(ctx, inst, audit.Config{URL: stream.URLs(natsURL),
			Checkpoint: audit.CheckpointConfig{KeyFile: keyFile, Every: 50, Interval: time.Hour, Idle: time.Hour}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			e := &event.Event{Kind: event.KindDecision, Tenant: "acme", RequestID: strconv.Itoa(i),
				Request:  &event.Request{Method: "POST", Path: "/mcp", Tool: "search"},
				Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
			if err := p.Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		epochs[inst] = p.Epoch()
		p.Close() // a final checkpoint
	}
	cfg := collector.Defaults()
	cfg.NATSURL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = stream.URLs(natsURL), chstore.AddrList(chAddr), ch.Database()
	cfg.BatchWait = 50 * time.Millisecond
	cctx, cancel := context.WithCancel(ctx)
	col, err := collector.New(cctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = col.Run(cctx) }()
	defer func() { cancel(); <-done; col.Close() }()
	// Everything in the stream: n events per instance and their checkpoints
	// (how many depends on timing).
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	poll.Until(t, 60*time.Second, func() error {
		rows, err := ch.Query(ctx, "SELECT count() FROM "+ch.Database()+".events")
		if err != nil || rows[0][0] != strconv.Itoa(want) {
			return fmt.Errorf("ClickHouse holds %v events (%v), want %d", rows, err, want)
		}
		return nil
	})
	// Stored is not yet acknowledged: verify counts what the collector has
	// not acked as in flight, and witnesses none of it.
	poll.Until(t, 60*time.Second, func() error {
		ci, err := js.Consumer(ctx, stream.Events, cfg.Consumer)
		if err != nil {
			return err
		}
		inf, err := ci.Info(ctx)
		if err != nil {
			return err
		}
		if inf.NumPending != 0 || inf.NumAckPending != 0 {
			return fmt.Errorf("the collector has %d messages pending and %d unacknowledged", inf.NumPending, inf.NumAckPending)
		}
		return nil
	})
	return epochs
}

func keyPair(t *testing.T) (string, map[string]ed25519.PublicKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	path := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return path, map[string]ed25519.PublicKey{chain.KeyID(pub): pub}
}

// mutate runs an ALTER ... UPDATE/DELETE and waits for the mutation to finish.
func mutate(t *testing.T, ch *chstore.Client, stmt string) {
	t.Helper()
	ctx := context.Background()
	if err := ch.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	poll.Until(t, 30*time.Second, func() error {
		rows, err := ch.Query(ctx, "SELECT count() FROM system.mutations WHERE database = '"+ch.Database()+"' AND is_done = 0")
		if err != nil || rows[0][0] != "0" {
			return fmt.Errorf("mutation not done: %s (%v %v)", stmt, rows, err)
		}
		return nil
	})
}

func TestVerifyNamesEveryTamperedSequenceNumber(t *testing.T) {
	srv := natstest.Run(t)
	addr, _ := chtest.Server(t)
	ch := chtest.Open(t, addr)
	key, trusted := keyPair(t)
	const n = 300
	epochs := record(t, srv.URL(), addr, ch, key, n, "enf-a", "enf-b")
	ctx := context.Background()
	opts := verify.Options{Keys: trusted, NATSURL: srv.URL()}

	res, err := verify.Run(ctx, ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || res.Chains != 2 || res.Events < 2*n || res.Witnesses != res.Checkpoints || res.Checkpoints < 4 {
		t.Fatalf("clean record: %+v", res)
	}

	db := ch.Database() + ".events_raw"
	a := "instance = 'enf-a'"
	mutate(t, ch, "ALTER TABLE "+db+" UPDATE tool = 'shell' WHERE "+a+" AND seq = 17")
	mutate(t, ch, "ALTER TABLE "+db+" DELETE WHERE "+a+" AND seq IN (40, 41, 42)")
	mutate(t, ch, "ALTER TABLE "+db+" UPDATE seq = if(seq = 60, 63, 60) WHERE "+a+" AND seq IN (60, 63)")
	lastRow, err := ch.Query(ctx, "SELECT max(seq) FROM "+db+" WHERE "+a)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.ParseUint(lastRow[0][0], 10, 64)
	mutate(t, ch, fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s AND seq > %d", db, a, last-4))
	// Another instance's events, renumbered into enf-a's chain.
	cols := "event_id, kind, event_time, event_time_us, tenant, instance, seq, epoch, prev_hash, request_id, method, path, tool, effect, policy_id, rule_id, checkpoint_unrecorded"
	sel := "event_id, kind, event_time, event_time_us, tenant, 'enf-a', seq + 95, '" + epochs["enf-a"] + "', prev_hash, request_id, method, path, tool, effect, policy_id, rule_id, checkpoint_unrecorded"
	if err := ch.Exec(ctx, "INSERT INTO "+db+" ("+cols+") SELECT "+sel+" FROM "+db+" WHERE instance = 'enf-b' AND seq IN (5, 6, 7)"); err != nil {
		t.Fatal(err)
	}

	res, err = verify.Run(ctx, ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[chain.FindingKind][]uint64{}
	for _, f := range res.Findings {
		if f.Instance != "enf-a" {
			t.Errorf("finding on the untouched instance: %v", f)
		}
		got[f.Kind] = append(got[f.Kind], f.Seq)
	}
	want := map[chain.FindingKind][]uint64{
		chain.Modified:  {17},
		chain.Deleted:   {40, 41, 42},
		chain.Reordered: {60, 63},
		chain.Spliced:   {100, 101, 102},
		chain.Truncated: {last - 3, last - 2, last - 1, last},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings\n got %v\nwant %v\n%v", got, want, res.Findings)
	}
	t.Logf("verified %d events: read %v, checked %v", res.Events, res.Read, res.Checked)
}

// BenchmarkVerify measures `rampart verify` end to end on ClickHouse 18.16:
// reading whole chains back (over HTTP, rows hashed as they stream in) and
// checking them. server-rows/s is the baseline from the same run: the
// server alone producing the same rows, discarded.
// go test -run '^$' -bench Verify -benchtime 3x -count 3 ./internal/verify/
func BenchmarkVerify(b *testing.B) {
	addr, _ := chtest.Server(b)
	ch := chtest.Open(b, addr)
	ctx := context.Background()
	const n = 500_000
	fill(b, ch, n)
	b.ResetTimer()
	var res *verify.Result
	for b.Loop() {
		var err error
		if res, err = verify.Run(ctx, ch, verify.Options{}); err != nil {
			b.Fatal(err)
		}
		if !res.Clean() || res.Events != n {
			b.Fatalf("%+v", res.Report)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	var cols []string
	for _, c := range chain.Columns {
		cols = append(cols, c.Name)
	}
	rate, size := serverRowsPerSecond(b, ch, n, strings.Join(cols, ", "))
	b.ReportMetric(rate, "server-rows/s")
	b.ReportMetric(size, "row-bytes")
	b.ReportMetric(float64(n)/res.Checked.Seconds(), "check-events/s")
	b.ReportMetric(float64(n)/res.Read.Seconds(), "read-events/s")
}

var eventColumns = ddl.EventColumns

func ddlRow(e *event.Event, seq uint64) []any { return ddl.EventRow(e, seq, time.Now()) }

// fill stores n chained events of one instance, a checkpoint every 1,000.
func fill(tb testing.TB, ch *chstore.Client, n int) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ids := &event.IDSource{}
	l := chain.NewLinker("enf-bench", "epoch-1")
	var rows [][]any
	t0 := time.Now().Add(-time.Hour)
	for i := 1; i <= n; i++ {
		at := t0.Add(time.Duration(i) * time.Microsecond)
		e := &event.Event{V: 1, ID: ids.New(at), Time: at, Tenant: "acme", RequestID: strconv.Itoa(i),
			Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: "agent:planner"}}, SessionID: "s"},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "search", ArgsDigest: "sha256:00"}}
		if i%1000 == 0 {
			l.Checkpoint(e, chain.Signer{KeyID: "k", Key: priv}, nil)
		} else {
			e.Kind, e.Decision = event.KindDecision, &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", PolicyHash: "sha256:11"}
			l.Link(e)
		}
		rows = append(rows, ddlRow(e, uint64(i)))
		if len(rows) == 50_000 {
			if err := ch.Insert(ctx, "events_raw", eventColumns, rows); err != nil {
				tb.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	if len(rows) > 0 {
		if err := ch.Insert(ctx, "events_raw", eventColumns, rows); err != nil {
			tb.Fatal(err)
		}
	}
}

// serverRowsPerSecond is how fast the server alone produces the rows verify
// reads (RowBinary over HTTP, discarded): the ceiling of reading them back.
func serverRowsPerSecond(tb testing.TB, ch *chstore.Client, n int, columns string) (rate, rowBytes float64) {
	q := "SELECT " + columns + " FROM " + ch.Database() + ".events_raw FORMAT RowBinary"
	start := time.Now()
	resp, err := http.Post("http://"+ch.HTTPAddr()+"/", "text/plain", strings.NewReader(q))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	size, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds(), float64(size) / float64(n)
}

// segmentedStore is a fresh database on a server whose HTTP interface is
// known: verify reads a segment at a time only over HTTP.
func segmentedStore(t *testing.T) *chstore.Client {
	t.Helper()
	ch := chtest.New(t)
	if ch.HTTPAddr() == "" {
		t.Fatal("segmented verify reads over HTTP: set RAMPART_CLICKHOUSE_HTTP_ADDR with RAMPART_CLICKHOUSE_ADDR")
	}
	return ch
}

func TestVerifyHoldsOneSegmentAtATime(t *testing.T) {
	ch := segmentedStore(t)
	ctx := context.Background()
	const n, every = 5000, 1000 // fill's checkpoint interval
	fill(t, ch, n)
	// Queries end mid-segment: a segment spans two of them.
	defer verify.SetScanRange(700)()
	res, err := verify.Run(ctx, ch, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Clean() || res.Events != n || res.Chains != 1 || res.Checkpoints != n/every {
		t.Fatalf("clean chain: %+v", res.Report)
	}
	// One segment and the link before it, never the chain.
	if res.Held > every+1 {
		t.Fatalf("verify held %d links at once, want at most a segment (%d) and its predecessor", res.Held, every)
	}

	// Tampering on both sides of a checkpoint: the record is read whole,
	// and named as before.
	db := ch.Database() + ".events_raw"
	mutate(t, ch, "ALTER TABLE "+db+" DELETE WHERE seq = 1001")
	mutate(t, ch, "ALTER TABLE "+db+" UPDATE tool = 'shell' WHERE seq = 1999")
	res, err = verify.Run(ctx, ch, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[chain.FindingKind][]uint64{}
	for _, f := range res.Findings {
		got[f.Kind] = append(got[f.Kind], f.Seq)
	}
	if want := map[chain.FindingKind][]uint64{chain.Deleted: {1001}, chain.Modified: {1999}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	if res.Held != n-1 {
		t.Fatalf("a tampered record is checked whole: held %d, want %d", res.Held, n-1)
	}
}

// A redelivered copy (the same event stored twice, unmerged) in a segment
// is no finding, and must not push verify off its one-segment-at-a-time
// path into reading the whole chain: at 100M events that path is the
// difference between a bounded and an exhausted memory.
func TestVerifyHoldsOneSegmentWithRedeliveredCopies(t *testing.T) {
	ch := segmentedStore(t)
	ctx := context.Background()
	const n, every = 3000, 1000 // fill's checkpoint interval
	fill(t, ch, n)
	cols := strings.Join(ddl.EventColumns, ", ")
	db := ch.Database() + ".events_raw"
	// Copies in the first segment, the second, and at a checkpoint.
	mutate(t, ch, "INSERT INTO "+db+" ("+cols+") SELECT "+cols+" FROM "+db+" WHERE seq IN (5, 999, 1000, 1500)")
	res, err := verify.Run(ctx, ch, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Clean() || res.Events != n || res.Checkpoints != n/every {
		t.Fatalf("clean chain with redelivered copies: %+v", res.Report)
	}
	if res.Held > every+1+4 {
		t.Fatalf("verify held %d links at once, want at most a segment (%d, and its copies) and its predecessor", res.Held, every)
	}
}

// A second copy of one seq, differing from the first, where the segment
// bound falls between the two: the segment must not end between copies,
// or the second is checked against nothing and the record reads clean.
func TestVerifySegmentBoundNeverSplitsCopies(t *testing.T) {
	ch := segmentedStore(t)
	ctx := context.Background()
	fill(t, ch, 3000)
	// Segment 1001..: 1001..1500 are 500 links, the bound; the edited copy
	// of 1500 comes next.
	defer verify.SetMaxSegment(500)()
	db := ch.Database() + ".events_raw"
	var sel []string
	for _, c := range ddl.EventColumns {
		if c == "tool" {
			c = "'shell' AS tool"
		}
		sel = append(sel, c)
	}
	mutate(t, ch, "INSERT INTO "+db+" ("+strings.Join(ddl.EventColumns, ", ")+") SELECT "+strings.Join(sel, ", ")+" FROM "+db+" WHERE seq = 1500")
	res, err := verify.Run(ctx, ch, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clean() {
		t.Fatalf("a second, edited copy of seq 1500 verifies clean (held %d)", res.Held)
	}
}
