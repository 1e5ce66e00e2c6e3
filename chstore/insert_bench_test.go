package chstore_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chclustertest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// BenchmarkInsertEvents is the collector's insert path on ClickHouse 18.16:
// flattening a batch of 1,000 typical events into rows (ddl.EventRow) and
// inserting it as one block, as the collector does with each batch.
// go test -run '^$' -bench 'InsertEvents$' -benchtime 20x ./  (BENCHMARKS.md)
func BenchmarkInsertEvents(b *testing.B) {
	ch := chtest.New(b)
	ctx := context.Background()
	const batch = 1000
	events := benchBatch(batch)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rows := make([][]any, 0, batch)
		for i, e := range events {
			rows = append(rows, ddl.EventRow(e, uint64(i+1), t0))
		}
		if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchBatch is n typical decision events of one chain.
func benchBatch(n int) []*event.Event {
	ids := &event.IDSource{}
	events := make([]*event.Event, n)
	for i := range events {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		events[i] = &event.Event{V: event.Version, ID: ids.New(at), Kind: event.KindDecision, Time: at, Tenant: "acme",
			Instance: "enforcer-7f9c", Epoch: "01JDQ3Z8K4V6T9W2X5Y7A0B3C7", Seq: uint64(i + 1),
			Prev: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", RequestID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6",
			Trace: event.Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			Identity: &event.Identity{Subject: "user:alice@acme.example", Issuer: "https://idp.acme.example",
				Chain: []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:web-researcher"}}, SessionID: "sess-8c1f2e", TaskID: "task-42"},
			Request: &event.Request{Method: "POST", Host: "tools.acme.internal", Path: "/mcp", RPCMethod: "tools/call",
				Headers: map[string]string{"user-agent": "agent-sdk/1.2"}, Tool: "search", ArgsDigest: "sha256:9f86", BodyBytes: 312},
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "acme-tools", RuleID: "allow-search", PolicyHash: "sha256:2c26", Reason: "read-only tool", EvalNanos: 4210},
		}
	}
	return events
}

// BenchmarkInsertEventsReplicated is BenchmarkInsertEvents into the
// replicated pair (through replica 1 of chclustertest's two) against a
// single server, alternating one batch each in the same run, so the ratio
// holds however loaded the machine is. replication-lag-ms is how long
// after an insert returned replica 2 first held its rows (every 10th batch,
// polled every millisecond).
// go test -run '^$' -bench InsertEventsReplicated -benchtime 200x ./  (BENCHMARKS.md)
func BenchmarkInsertEventsReplicated(b *testing.B) {
	ctx := context.Background()
	single := chtest.New(b)
	cl := chclustertest.New(b)
	replicas := cl.Open(b)
	const batch = 1000
	events := benchBatch(batch)
	var inSingle, inPair time.Duration
	var lags []time.Duration
	n := 0
	// Each batch's stream sequences are new, so no block repeats one
	// before it: replication would store a repeated block once.
	insert := func(c *chstore.Client) time.Duration {
		rows := make([][]any, 0, batch)
		for i, e := range events {
			rows = append(rows, ddl.EventRow(e, uint64(n*batch+i+1), t0))
		}
		start := time.Now()
		if err := c.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// The newest batch's last stream sequence: merges collapse the batches
	// (the same events each time), keeping the newest copy of each.
	stored := func(c *chstore.Client) int {
		rows, err := c.Query(ctx, "SELECT max(stream_seq) FROM "+c.Database()+".events_raw")
		if err != nil {
			b.Fatal(err)
		}
		v, _ := strconv.Atoi(rows[0][0])
		return v
	}
	b.ResetTimer()
	for b.Loop() {
		inSingle += insert(single)
		inPair += insert(replicas[0])
		n++
		if n%10 == 0 {
			at := time.Now()
			// Polled finely: poll.Interval is coarser than the lag measured.
			for stored(replicas[1]) < n*batch {
				time.Sleep(time.Millisecond)
			}
			lags = append(lags, time.Since(at))
		}
	}
	b.StopTimer()
	slices.Sort(lags)
	perSec := func(d time.Duration) float64 { return float64(batch*n) / d.Seconds() }
	b.ReportMetric(perSec(inSingle), "single-events/s")
	b.ReportMetric(perSec(inPair), "replicated-events/s")
	b.ReportMetric(perSec(inPair)/perSec(inSingle), "replicated/single")
	if len(lags) > 0 {
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "replication-lag-p50-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "replication-lag-max-ms")
	}
}
