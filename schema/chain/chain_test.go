package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

type fixture struct {
	signer Signer
	keys   map[string]ed25519.PublicKey
}

func newFixture(t testing.TB) fixture {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{Signer{KeyID: "k1", Key: priv}, map[string]ed25519.PublicKey{"k1": pub}}
}

// chain makes n events of one instance epoch, a checkpoint every 10th
// (so seq 10, 20, ... are checkpoints) and unrecorded listed where asked.
func (f fixture) chain(instance, epoch string, n int, unrecorded map[uint64]bool) []*event.Event {
	return f.chainEvery(instance, epoch, n, 10, unrecorded)
}

func (f fixture) chainEvery(instance, epoch string, n, every int, unrecorded map[uint64]bool) []*event.Event {
	ids := &event.IDSource{}
	l := NewLinker(instance, epoch)
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	var out []*event.Event
	var pending []uint64
	for i := 1; i <= n; i++ {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		e := &event.Event{V: 1, ID: ids.New(at), Time: at, Tenant: "acme", RequestID: fmt.Sprint(i)}
		if i%every == 0 {
			l.Checkpoint(e, f.signer, pending)
			pending = nil
		} else {
			e.Kind = event.KindDecision
			e.Request = &event.Request{Method: "POST", Tool: "search"}
			e.Decision = &event.Decision{Effect: event.EffectAllow, RuleID: "r"}
			l.Link(e)
			if unrecorded[e.Seq] {
				pending = append(pending, e.Seq)
				continue // published but never stored
			}
		}
		out = append(out, e)
	}
	return out
}

func clone(es []*event.Event) []*event.Event {
	out := make([]*event.Event, len(es))
	for i, e := range es {
		c := *e
		if e.Request != nil {
			r := *e.Request
			c.Request = &r
		}
		out[i] = &c
	}
	return out
}

func bySeq(es []*event.Event, seq uint64) *event.Event {
	for _, e := range es {
		if e.Seq == seq {
			return e
		}
	}
	panic(seq)
}

func without(es []*event.Event, drop func(*event.Event) bool) []*event.Event {
	var out []*event.Event
	for _, e := range es {
		if !drop(e) {
			out = append(out, e)
		}
	}
	return out
}

type want struct {
	kind FindingKind
	seqs []uint64
}

func TestCheckNamesEachTamperedSequenceNumber(t *testing.T) {
	f := newFixture(t)
	a := f.chain("enf-a", "ep1", 50, nil)
	b := f.chain("enf-b", "ep9", 20, nil)
	lastA := a[len(a)-1] // seq 50, a checkpoint

	cases := []struct {
		name      string
		tamper    func(a, b []*event.Event) []*event.Event
		witnesses []*event.Event
		want      []want
	}{
		{"clean", func(a, b []*event.Event) []*event.Event { return append(a, b...) }, []*event.Event{lastA}, nil},
		{"redelivered copies", func(a, b []*event.Event) []*event.Event { return append(append(a, clone(a)...), b...) }, nil, nil},
		{"modified", func(a, b []*event.Event) []*event.Event {
			bySeq(a, 17).Request.Tool = "shell"
			return append(a, b...)
		}, nil, []want{{Modified, []uint64{17}}}},
		{"deleted", func(a, b []*event.Event) []*event.Event {
			return append(without(a, func(e *event.Event) bool { return e.Seq >= 20 && e.Seq <= 22 }), b...)
		}, nil, []want{{Deleted, []uint64{20, 21, 22}}}},
		{"reordered", func(a, b []*event.Event) []*event.Event {
			bySeq(a, 33).Seq, bySeq(a, 30).Seq = 30, 33
			return append(a, b...)
		}, nil, []want{{Reordered, []uint64{30, 33}}}},
		{"reordered neighbours", func(a, b []*event.Event) []*event.Event {
			x, y := bySeq(a, 41), bySeq(a, 42)
			x.Seq, y.Seq = 42, 41
			return append(a, b...)
		}, nil, []want{{Reordered, []uint64{41, 42}}}},
		{"truncated tail", func(a, b []*event.Event) []*event.Event {
			return append(without(a, func(e *event.Event) bool { return e.Seq > 45 }), b...)
		}, []*event.Event{lastA}, []want{{Truncated, []uint64{46, 47, 48, 49, 50}}}},
		{"spliced from another instance", func(a, b []*event.Event) []*event.Event {
			for i, e := range clone(b[4:7]) {
				e.Instance, e.Epoch, e.Seq = "enf-a", "ep1", uint64(51+i)
				a = append(a, e)
			}
			return append(a, b...)
		}, nil, []want{{Spliced, []uint64{51, 52, 53}}}},
		{"spliced over deleted events", func(a, b []*event.Event) []*event.Event {
			a = without(a, func(e *event.Event) bool { return e.Seq >= 24 && e.Seq <= 26 })
			for i, e := range clone(b[4:7]) {
				e.Instance, e.Epoch, e.Seq = "enf-a", "ep1", uint64(24+i)
				a = append(a, e)
			}
			return append(a, b...)
		}, nil, []want{{Spliced, []uint64{24, 25, 26}}}},
		{"second event at a sequence number", func(a, b []*event.Event) []*event.Event {
			fake := *bySeq(a, 12)
			fake.ID, fake.RequestID = "01FORGED00000000000000000", "forged"
			return append(append(a, &fake), b...)
		}, nil, []want{{Spliced, []uint64{12}}}},
		{"forged checkpoint signature", func(a, b []*event.Event) []*event.Event {
			cp := *bySeq(a, 20).Checkpoint
			cp.Signature = "AAAA"
			bySeq(a, 20).Checkpoint = &cp
			return append(a, b...)
		}, nil, []want{{BadSignature, []uint64{20}}, {Modified, []uint64{20}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events := tc.tamper(clone(a), clone(b))
			rep := Check(events, Options{Keys: f.keys, Witnesses: tc.witnesses})
			got := map[FindingKind][]uint64{}
			for _, fd := range rep.Findings {
				got[fd.Kind] = append(got[fd.Kind], fd.Seq)
			}
			wantMap := map[FindingKind][]uint64{}
			for _, w := range tc.want {
				wantMap[w.kind] = w.seqs
			}
			if !reflect.DeepEqual(got, wantMap) {
				t.Fatalf("findings %v\nwant %v\nreport: %v", got, wantMap, rep.Findings)
			}
			if rep.Chains != 2 {
				t.Fatalf("%d chains", rep.Chains)
			}
		})
	}
}

func TestUnrecordedGapsAreNotTampering(t *testing.T) {
	f := newFixture(t)
	events := f.chain("enf-a", "ep1", 30, map[uint64]bool{13: true, 14: true})
	rep := Check(events, Options{Keys: f.keys})
	if !rep.Clean() || len(rep.Findings) != 2 || rep.Findings[0].Seq != 13 || rep.Findings[0].Kind != Unrecorded {
		t.Fatalf("findings %v", rep.Findings)
	}
}

func TestHashCoversEveryField(t *testing.T) {
	f := newFixture(t)
	e := f.chain("i", "e", 1, nil)[0]
	base := Of(e)
	mutations := map[string]func(*event.Event){
		"tenant":  func(e *event.Event) { e.Tenant = "globex" },
		"time":    func(e *event.Event) { e.Time = e.Time.Add(time.Microsecond) },
		"seq":     func(e *event.Event) { e.Seq++ },
		"prev":    func(e *event.Event) { e.Prev = "sha256:00" },
		"tool":    func(e *event.Event) { e.Request.Tool = "x" },
		"dest":    func(e *event.Event) { e.Request.Destination = "internet" },
		"query":   func(e *event.Event) { e.Request.Query = "x=1" },
		"header":  func(e *event.Event) { e.Request.Headers = map[string]string{"user-agent": "x"} },
		"effect":  func(e *event.Event) { e.Decision.Effect = event.EffectDeny },
		"shadow":  func(e *event.Event) { e.Decision.Shadow = []string{"audit-x"} },
		"chain":   func(e *event.Event) { e.Identity = &event.Identity{Chain: []event.Actor{{Subject: "a"}}} },
		"args":    func(e *event.Event) { e.Request.Args = []byte(`{}`) },
		"status":  func(e *event.Event) { e.Response = &event.Response{Status: 200} },
		"trace":   func(e *event.Event) { e.Trace.TraceParent = "00-x" },
		"boundry": func(e *event.Event) { e.Tenant, e.Instance = e.Tenant+e.Instance[:1], e.Instance[1:] },
	}
	for name, mutate := range mutations {
		c := clone([]*event.Event{e})[0]
		d := *c.Decision
		c.Decision = &d
		mutate(c)
		if Of(c) == base {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	if Of(&event.Event{}) != Of(&event.Event{Identity: &event.Identity{}, Request: &event.Request{}}) {
		t.Error("absent and empty sections must hash alike: storage cannot tell them apart")
	}
}

func BenchmarkCheck(b *testing.B) {
	f := newFixture(b)
	// A checkpoint every 1,000 events, as at 1,000 events/s with the
	// default one-second interval.
	events := f.chainEvery("enf-a", "ep1", 100000, 1000, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rep := Check(events, Options{Keys: f.keys}); !rep.Clean() {
			b.Fatal(rep.Findings[:1])
		}
	}
	b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestParseHash(t *testing.T) {
	h := Of(&event.Event{ID: "x"})
	if got, ok := ParseHash([]byte(h.String())); !ok || got != h {
		t.Fatalf("round trip: %v %v", got, ok)
	}
	upper := Prefix + strings.ToUpper(h.String()[len(Prefix):])
	for _, bad := range []string{"", "sha256:", h.String()[:len(h.String())-1], h.String() + "0", "sha512:" + h.String()[len(Prefix):],
		upper, h.String()[:len(h.String())-1] + "g", strings.Replace(h.String(), "sha256:", "sha256-", 1)} {
		if got, ok := ParseHash([]byte(bad)); ok || got != (Hash{}) {
			t.Errorf("ParseHash(%q) = %v, %v; want a refusal", bad, got, ok)
		}
	}
}

// BenchmarkOf is the chain hash of one typical decision event: what an
// enforcer adds to every event it records (BENCHMARKS.md).
func BenchmarkOf(b *testing.B) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	e := &event.Event{
		V: event.Version, ID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6", Kind: event.KindDecision, Time: now, Tenant: "acme", Instance: "enforcer-7f9c",
		Epoch: "01JDQ3Z8K4V6T9W2X5Y7A0B3C7", Seq: 184467, Prev: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		RequestID: "01JDQ3Z8K4V6T9W2X5Y7A0B3C6",
		Trace:     event.Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Identity: &event.Identity{Subject: "user:alice@acme.example", Issuer: "https://idp.acme.example",
			Chain: []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:web-researcher"}}, SessionID: "sess-8c1f2e", TaskID: "task-42"},
		Request: &event.Request{Method: "POST", Host: "tools.acme.internal", Path: "/mcp", RPCMethod: "tools/call",
			Headers: map[string]string{"user-agent": "agent-sdk/1.2"}, Tool: "search", ArgsDigest: "sha256:9f86", BodyBytes: 312},
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "acme-tools", RuleID: "allow-search", PolicyHash: "sha256:2c26", Reason: "read-only tool", EvalNanos: 4210},
	}
	b.ReportAllocs()
	var h Hash
	for b.Loop() {
		h = Of(e)
	}
	_ = h
}

// A chain checked a segment at a time: the segment after the link before
// it, whose earlier sequence numbers are not missing.
func TestCheckFromASegmentsPredecessor(t *testing.T) {
	f := newFixture(t)
	es := f.chain("enf-1", "e1", 40, nil)
	segment := func(events []*event.Event) []Link {
		var ls []Link
		for _, e := range events {
			if e.Seq >= 20 { // the checkpoint at 20 ends the segment before
				ls = append(ls, LinkOf(e))
			}
		}
		return ls
	}
	for _, c := range []struct {
		name   string
		events []*event.Event
		want   map[FindingKind][]uint64
	}{
		{"clean", es, map[FindingKind][]uint64{}},
		{"first row of the segment deleted", without(es, func(e *event.Event) bool { return e.Seq == 21 }), map[FindingKind][]uint64{Deleted: {21}}},
		{"predecessor edited after chaining", func() []*event.Event {
			out := clone(es)
			cp := *bySeq(out, 20).Checkpoint
			cp.Unrecorded = []uint64{3}
			bySeq(out, 20).Checkpoint = &cp
			return out
		}(), map[FindingKind][]uint64{BadSignature: {20}, Modified: {21}}}, // without seq 19 the segment cannot tell which of 20 and 21 changed
	} {
		t.Run(c.name, func(t *testing.T) {
			rep, err := CheckLinks(segment(c.events), Options{Keys: f.keys, From: map[ChainID]uint64{{Instance: es[0].Instance, Epoch: es[0].Epoch}: 21}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[FindingKind][]uint64{}
			for _, fd := range rep.Findings {
				got[fd.Kind] = append(got[fd.Kind], fd.Seq)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("findings %v, want %v", got, c.want)
			}
		})
	}
}

// Ranges of two chains checked at once, each from its own From: the
// seqs before each are not reported, and a deletion inside either is,
// under its own chain. A chain with no From is checked from seq 1.
func TestCheckFromPerChain(t *testing.T) {
	f := newFixture(t)
	a, b := f.chain("enf-1", "e1", 60, nil), f.chain("enf-2", "e1", 60, nil)
	ranges := func(drop uint64) []Link {
		var ls []Link
		for _, e := range a {
			if e.Seq >= 30 && e.Seq != drop {
				ls = append(ls, LinkOf(e))
			}
		}
		for _, e := range b {
			if e.Seq >= 45 {
				ls = append(ls, LinkOf(e))
			}
		}
		return ls
	}
	from := map[ChainID]uint64{{Instance: "enf-1", Epoch: "e1"}: 31, {Instance: "enf-2", Epoch: "e1"}: 46}
	for _, c := range []struct {
		name string
		from map[ChainID]uint64
		drop uint64
		want map[string][]uint64
	}{
		{"clean", from, 0, map[string][]uint64{}},
		{"a deletion in one range", from, 40, map[string][]uint64{"enf-1": {40}}},
		{"enf-2 without a From", map[ChainID]uint64{{Instance: "enf-1", Epoch: "e1"}: 31}, 0, map[string][]uint64{"enf-2": seqs(1, 44)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep, err := CheckLinks(ranges(c.drop), Options{Keys: f.keys, From: c.from})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]uint64{}
			for _, fd := range rep.Findings {
				if fd.Kind != Deleted {
					t.Fatalf("finding %v, want only deletions", fd)
				}
				got[fd.Instance] = append(got[fd.Instance], fd.Seq)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("deleted %v, want %v", got, c.want)
			}
		})
	}
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// BenchmarkCheckRange checks one session's worth of links, 3,000 of one
// chain, at the chain's start (the baseline) and ten million seqs in: the
// cost must not grow with how far into its chain the range lies.
func BenchmarkCheckRange(b *testing.B) {
	for _, start := range []uint64{1, 10_000_000} {
		b.Run(fmt.Sprintf("from=%d", start), func(b *testing.B) {
			l := NewLinker("enf-1", "e1")
			l.seq = start - 1
			t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
			var links []Link
			for i := range 3000 {
				e := &event.Event{V: 1, ID: fmt.Sprint(i), Time: t0.Add(time.Duration(i) * time.Millisecond), Tenant: "acme",
					Kind: event.KindDecision, Decision: &event.Decision{Effect: event.EffectAllow, RuleID: "r"}}
				l.Link(e)
				links = append(links, LinkOf(e))
			}
			// The first link is the one before the range, as CheckRanges reads it.
			o := Options{From: map[ChainID]uint64{{Instance: "enf-1", Epoch: "e1"}: start + 1}}
			for b.Loop() {
				if rep, err := CheckLinks(links, o); err != nil || !rep.Clean() {
					b.Fatal(err, rep.Findings[:1])
				}
			}
		})
	}
}
