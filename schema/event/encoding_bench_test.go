package event

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// sample is a typical decision event for a delegated MCP tool call.
func sample() *Event {
	ids := &IDSource{}
	now := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	return &Event{
		V: Version, ID: ids.New(now), Kind: KindDecision, Time: now, Tenant: "acme", Instance: "enforcer-7f9c",
		Seq: 184467, RequestID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6",
		Trace: Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Identity: &Identity{
			Subject: "user:alice@acme.example", Issuer: "https://idp.acme.example",
			SPIFFEID:  "spiffe://acme.example/ns/agents/sa/planner",
			Chain:     []Actor{{Subject: "agent:planner"}, {Subject: "agent:web-researcher"}},
			SessionID: "sess-8c1f2e", TaskID: "task-42",
		},
		Request: &Request{Method: "POST", Host: "tools.acme.internal", Path: "/mcp", RPCMethod: "tools/call",
			Tool: "search", ArgsDigest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", BodyBytes: 312},
		Decision: &Decision{Effect: EffectAllow, PolicyID: "acme-tools", RuleID: "allow-search",
			PolicyHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Reason: "read-only tool", EvalNanos: 4210},
	}
}

// The encodings compared for the v1 wire format; BENCHMARKS.md has results.
func BenchmarkEncode(b *testing.B) {
	e := sample()
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			data, _ := json.Marshal(e)
			n = len(data)
		}
		b.ReportMetric(float64(n), "bytes/event")
	})
	b.Run("Encode", func(b *testing.B) { // the same bytes as json, without reflection
		b.ReportAllocs()
		var n int
		for b.Loop() {
			data, _ := Encode(e)
			n = len(data)
		}
		b.ReportMetric(float64(n), "bytes/event")
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			data, _ := msgpack.Marshal(e)
			n = len(data)
		}
		b.ReportMetric(float64(n), "bytes/event")
	})
	b.Run("gob-stream", func(b *testing.B) {
		// gob amortises type info over a stream; per-message gob (as on NATS) is worse.
		b.ReportAllocs()
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		_ = enc.Encode(e)
		for b.Loop() {
			buf.Reset()
			_ = enc.Encode(e)
		}
		b.ReportMetric(float64(buf.Len()), "bytes/event")
	})
}

func BenchmarkDecode(b *testing.B) {
	e := sample()
	js, _ := json.Marshal(e)
	mp, _ := msgpack.Marshal(e)
	b.Run("json+validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json+validate", func(b *testing.B) { // Decode before its fast path: the baseline
		b.ReportAllocs()
		for b.Loop() {
			e, err := unmarshal(js)
			if err != nil || e.Validate() != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out Event
			if err := msgpack.Unmarshal(mp, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(out)
	if !bytes.Equal(data, again) {
		t.Fatalf("round trip changed the event:\n%s\n%s", data, again)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]string{
		"not json":        `{"v":1,`,
		"version 2":       `{"v":2,"id":"x"}`,
		"no version":      `{"id":"x"}`,
		"unknown kind":    `{"v":1,"id":"x","kind":"nope","time":"2026-01-01T00:00:00Z","instance":"i","seq":1}`,
		"decision absent": `{"v":1,"id":"x","kind":"decision","time":"2026-01-01T00:00:00Z","instance":"i","seq":1}`,
		"no seq":          `{"v":1,"id":"x","kind":"request","time":"2026-01-01T00:00:00Z","instance":"i","request":{}}`,
	}
	for name, in := range cases {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIDsAreSortableAndUnique(t *testing.T) {
	s := &IDSource{}
	now := time.Now()
	prev := ""
	for i := 0; i < 10000; i++ {
		id := s.New(now) // same millisecond throughout
		if len(id) != 26 || id <= prev {
			t.Fatalf("id %d %q not after %q", i, id, prev)
		}
		prev = id
	}
	if later := s.New(now.Add(-time.Hour)); later <= prev {
		t.Fatalf("clock step back broke ordering: %q <= %q", later, prev)
	}
}
