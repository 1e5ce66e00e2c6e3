package chstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// BenchmarkInsertEvents is the collector's insert path on ClickHouse 18.16:
// flattening a batch of 1,000 typical events into rows (ddl.EventRow) and
// inserting it as one block, as the collector does with each batch.
// go test -run '^$' -bench InsertEvents -benchtime 20x ./  (BENCHMARKS.md)
func BenchmarkInsertEvents(b *testing.B) {
	ch := chtest.New(b)
	ctx := context.Background()
	const batch = 1000
	ids := &event.IDSource{}
	events := make([]*event.Event, batch)
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
