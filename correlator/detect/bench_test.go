package detect

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// benchEvents is a stream shaped like an enforcer's: per exchange a
// decision then a response, across 2,000 sessions, 500 actors and 40
// tools, 5% denied, a few sensitive reads and internet sends, a
// delegation chain on a third; 10 µs apart (100k events/s of event time).
func benchEvents(n int) []*event.Event {
	evs := make([]*event.Event, 0, n)
	for i := 0; len(evs) < n; i++ {
		at := t0.Add(time.Duration(len(evs)) * 10 * time.Microsecond)
		id := &event.Identity{Subject: fmt.Sprintf("user:%d", i%300), SessionID: fmt.Sprintf("s%d", i%2000)}
		if i%3 == 0 {
			id.Chain = []event.Actor{{Subject: fmt.Sprintf("agent:%d", i%500)}}
		}
		req := &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: fmt.Sprintf("tool%d", i%40), Destination: "internal", DataClass: "internal"}
		switch i % 50 {
		case 7:
			req.DataClass = "confidential"
		case 19:
			req.Destination = "internet"
		}
		d := &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "allow-tools"}
		if i%20 == 0 {
			d.Effect, d.RuleID = event.EffectDeny, "deny-default"
		}
		rid := fmt.Sprintf("R%08d", i)
		evs = append(evs, &event.Event{V: 1, ID: fmt.Sprintf("D%08d", i), Kind: event.KindDecision, Time: at, Tenant: fmt.Sprintf("t%d", i%4),
			Instance: "enf-1", Epoch: "ep1", Seq: uint64(len(evs) + 1), RequestID: rid, Identity: id, Request: req, Decision: d})
		if d.Effect == event.EffectAllow {
			evs = append(evs, &event.Event{V: 1, ID: fmt.Sprintf("A%08d", i), Kind: event.KindResponse, Time: at.Add(5 * time.Microsecond), Tenant: fmt.Sprintf("t%d", i%4),
				Instance: "enf-1", Epoch: "ep1", Seq: uint64(len(evs) + 1), RequestID: rid, Identity: id, Request: req,
				Response: &event.Response{Status: 200, DurationNs: 5000, Outcome: event.OutcomeCompleted}})
		}
	}
	return evs
}

// BenchmarkEngineShippedPack is the engine on one core with the whole
// shipped pack: ns/op is per event.
func BenchmarkEngineShippedPack(b *testing.B) {
	benchEngine(b, nil)
}

// BenchmarkEngineShippedPackInventory is BenchmarkEngineShippedPack with
// an agent inventory, as the correlator runs it: each event's agent
// looked up (a 2,000-entry inventory of exact subjects, tenant-scoped and
// platform-wide, and subject prefixes; two thirds of the actors match) and
// given to the engine, so ns/op is the lookup plus the rules' use of it.
func BenchmarkEngineShippedPackInventory(b *testing.B) {
	var y strings.Builder
	y.WriteString("agents:\n")
	for i := range 500 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&y, "  - subject: \"agent:%d\"\n    tenant: t%d\n    owner: o%d\n    risk_tier: high\n", i, i%4, i)
		case 1:
			fmt.Fprintf(&y, "  - subject: \"agent:%d\"\n    owner: o%d\n    risk_tier: low\n", i, i)
		}
		fmt.Fprintf(&y, "  - subject: \"user:%d:*\"\n    tenant: t%d\n    owner: u%d\n", i, i%4, i)
		fmt.Fprintf(&y, "  - subject: \"svc:%d-*\"\n    owner: s%d\n", i, i)
		fmt.Fprintf(&y, "  - subject: \"bot:%d\"\n    tenant: t%d\n    owner: b%d\n", i, i%4, i)
	}
	ix, err := inventory.Parse([]byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	benchEngine(b, ix.Agent)
}

func benchEngine(b *testing.B, agent func(*event.Event) ddl.Agent) {
	evs := benchEvents(200_000)
	base := make([]time.Time, len(evs))
	for i, x := range evs {
		base[i] = x.Time
	}
	e := NewEngine(Shipped(), Options{})
	b.ReportAllocs()
	b.ResetTimer()
	alerts := 0
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(evs) == 0 {
			// Each lap of the stream is a day later in event time, so
			// windows keep moving forward as in a real stream, and its
			// sequence numbers continue the last lap's.
			b.StopTimer()
			lap := time.Duration(i/len(evs)) * 24 * time.Hour
			for j, x := range evs {
				x.Time = base[j].Add(lap)
				x.Seq = uint64(i + j + 1) // dense across laps, as one epoch
			}
			b.StartTimer()
		}
		ev := evs[i%len(evs)]
		if agent == nil {
			alerts += len(e.Observe(ev))
		} else {
			alerts += len(e.ObserveAgent(ev, agent(ev)))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(b.N)*1e6, "alerts/Mevents")
}

// BenchmarkMatchOnlyShippedPack is the baseline: every rule's match (and
// step and expect expressions) on each event, with no grouping or state.
func BenchmarkMatchOnlyShippedPack(b *testing.B) {
	evs := benchEvents(200_000)
	rs := Shipped()
	a := newActivation()
	b.ReportAllocs()
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		a.reset(evs[i%len(evs)])
		for _, r := range rs.rules {
			xs := []*expr{r.match, r.expect}
			for _, st := range r.steps {
				xs = append(xs, st.match)
			}
			for _, x := range xs {
				if x == nil {
					continue
				}
				if ok, _ := x.eval(a); ok {
					hits++
				}
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeEvent is the other baseline: decoding one event from
// its JSON, which the correlator does for every event it consumes.
func BenchmarkDecodeEvent(b *testing.B) {
	evs := benchEvents(1000)
	raws := make([][]byte, len(evs))
	for i, ev := range evs {
		raws[i], _ = json.Marshal(ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.Decode(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeEventJSON is BenchmarkDecodeEvent through encoding/json
// alone, as event.Decode did before its reflection-free path: the baseline.
func BenchmarkDecodeEventJSON(b *testing.B) {
	evs := benchEvents(1000)
	raws := make([][]byte, len(evs))
	for i, ev := range evs {
		raws[i], _ = json.Marshal(ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var e event.Event
		if err := json.Unmarshal(raws[i%len(raws)], &e); err != nil || e.Validate() != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkGroupMemory measures the heap held per tracked group, for the
// correlations' typical states, by creating 100,000 groups and reading
// the live heap before and after (b.N is ignored beyond one round).
func BenchmarkGroupMemory(b *testing.B) {
	kinds := map[string]string{
		"event_count": "match: effect == \"deny\"\ngroup_by: [session]\nevent_count: {window: 1h, gte: 10}\n",
		"value_count": "match: effect == \"deny\"\ngroup_by: [session]\nvalue_count: {field: tool, window: 1h, gte: 5}\n",
		"sequence":    "group_by: [session]\nsequence:\n  window: 1h\n  steps:\n    - match: data_class == \"pii\"\n    - match: destination == \"internet\"\n",
		"new_value":   "match: \"true\"\ngroup_by: [subject]\nnew_value: {field: actor, lookback: 30d}\n",
		"absence":     "match: \"true\"\ngroup_by: [request_id]\nabsence: {expect: kind == \"response\", window: 1h}\n",
	}
	for _, name := range []string{"event_count", "value_count", "sequence", "new_value", "absence"} {
		b.Run(name, func(b *testing.B) {
			rs := load(b, map[string]string{"r.yaml": rule("mem", kinds[name])})
			const groups = 100_000
			// Events are made one at a time and left to the collector, so
			// the heap after holds only what the groups keep of them.
			mk := func(i int) *event.Event {
				return &event.Event{V: 1, ID: fmt.Sprintf("E%08d", i), Kind: event.KindDecision, Time: t0.Add(time.Duration(i) * time.Microsecond),
					Tenant: "acme", Instance: "i", Seq: uint64(i + 1), RequestID: fmt.Sprintf("R%08d", i),
					Identity: &event.Identity{Subject: fmt.Sprintf("user:%d", i), SessionID: fmt.Sprintf("session-%08d", i), Chain: []event.Actor{{Subject: "agent:a"}}},
					Request:  &event.Request{Tool: "t", DataClass: "pii"}, Decision: &event.Decision{Effect: event.EffectDeny}}
			}
			for i := 0; i < b.N; i++ {
				e := NewEngine(rs, Options{MaxGroupsPerRule: groups, MaxGroupsPerTenant: groups})
				before := liveHeap()
				for j := range groups {
					e.Observe(mk(j))
				}
				after := liveHeap()
				if n := len(e.rules[0].groups); n != groups {
					b.Fatalf("%d groups", n)
				}
				b.ReportMetric(float64(after-before)/groups, "bytes/group")
				runtime.KeepAlive(e)
			}
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
