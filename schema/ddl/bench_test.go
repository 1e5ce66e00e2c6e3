package ddl_test

import (
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// benchEvent is a typical decision event for a delegated MCP tool call,
// with recorded headers: what the collector flattens for most rows.
func benchEvent() *event.Event {
	now := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	return &event.Event{
		V: event.Version, ID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6", Kind: event.KindDecision, Time: now, Tenant: "acme", Instance: "enforcer-7f9c",
		Epoch: "01JDQ3Z8K4V6T9W2X5Y7A0B3C7", Seq: 184467, Prev: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		RequestID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6",
		Trace:     event.Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Identity: &event.Identity{
			Subject: "user:alice@acme.example", Issuer: "https://idp.acme.example",
			SPIFFEID:  "spiffe://acme.example/ns/agents/sa/planner",
			Chain:     []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:web-researcher"}},
			SessionID: "sess-8c1f2e", TaskID: "task-42", SessionSource: "token",
		},
		Request: &event.Request{Method: "POST", Host: "tools.acme.internal", Path: "/mcp", RPCMethod: "tools/call", RPCKind: "request",
			Headers: map[string]string{"user-agent": "agent-sdk/1.2", "x-client": "planner"},
			Tool:    "search", ArgsDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", BodyBytes: 312},
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "acme-tools", RuleID: "allow-search",
			PolicyHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Reason: "read-only tool", EvalNanos: 4210},
	}
}

// BenchmarkEventRow is the collector's part of an insert that this package
// owns: flattening one event into the values of a row (BENCHMARKS.md).
func BenchmarkEventRow(b *testing.B) {
	e := benchEvent()
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if row := ddl.EventRow(e, 7, at); len(row) != len(ddl.EventColumns) {
			b.Fatal(len(row))
		}
	}
}
