package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

func evidenceOf(evs ...*event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestEventCountGteFiresOncePerWindow(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("burst", `
match: effect == "deny"
group_by: [actor]
event_count: {window: 1m, gte: 3}
`)})
	e := NewEngine(rs, Options{})
	a1, a2, a3 := ev(0, deny), ev(10*time.Second, deny), ev(20*time.Second, deny)
	allowed := ev(25 * time.Second) // not a match
	if got := feed(e, a1, a2, allowed); len(got) != 0 {
		t.Fatalf("fired before the threshold: %v", ids(got))
	}
	got := feed(e, a3)
	if len(got) != 1 || !slices.Equal(got[0].Alert.Evidence, evidenceOf(a1, a2, a3)) || got[0].Alert.Count != 3 {
		t.Fatalf("want one alert of a1..a3, got %v", ids(got))
	}
	// Muted until a1+1m: a burst that keeps going does not fire again.
	b1, b2, b3 := ev(30*time.Second, deny), ev(40*time.Second, deny), ev(50*time.Second, deny)
	if got := feed(e, b1, b2, b3); len(got) != 0 {
		t.Fatalf("fired while muted: %v", ids(got))
	}
	// After the mute, the events tracked meanwhile count: the latest 3.
	c1 := ev(61*time.Second, deny)
	got = feed(e, c1)
	if len(got) != 1 || !slices.Equal(got[0].Alert.Evidence, evidenceOf(b2, b3, c1)) {
		t.Fatalf("after the mute: want b2 b3 c1, got %v", ids(got))
	}
	// Events further apart than the window never add up.
	e2 := NewEngine(rs, Options{})
	if got := feed(e2, ev(0, deny), ev(61*time.Second, deny), ev(122*time.Second, deny), ev(183*time.Second, deny)); len(got) != 0 {
		t.Fatalf("events a window apart fired: %v", ids(got))
	}
}

func TestEventCountLteFiresWhenTheWindowLapses(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("rare", `
match: tool == "export"
group_by: [session]
event_count: {window: 1m, lte: 1}
`)})
	e := NewEngine(rs, Options{})
	once := ev(0, tool("export"), session("quiet"))
	twice1, twice2 := ev(time.Second, tool("export"), session("busy")), ev(2*time.Second, tool("export"), session("busy"))
	if got := feed(e, once, twice1, twice2); len(got) != 0 {
		t.Fatalf("lte fired before its window ended: %v", ids(got))
	}
	if got := e.Advance(t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("fired at the deadline itself (the window is inclusive): %v", ids(got))
	}
	got := e.Advance(t0.Add(time.Minute + 2*time.Second + 1))
	if len(got) != 1 || got[0].Alert.Group[0].Value != "quiet" || !got[0].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("want one alert for session quiet at the deadline, got %v", got)
	}
	if got[0].RequestID != once.RequestID {
		t.Fatalf("lapsed alert names request %q, want its event's %q", got[0].RequestID, once.RequestID)
	}
}

func TestValueCountCountsDistinctValues(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("spread", `
match: effect == "deny"
group_by: [actor]
value_count: {field: tool, window: 1m, gte: 3}
`)})
	e := NewEngine(rs, Options{})
	x1, x2, x3 := ev(0, deny, tool("a")), ev(time.Second, deny, tool("a")), ev(2*time.Second, deny, tool("b"))
	none := ev(3*time.Second, deny) // no tool: not a value
	if got := feed(e, x1, x2, x3, none); len(got) != 0 {
		t.Fatalf("two distinct values fired: %v", ids(got))
	}
	x4 := ev(4*time.Second, deny, tool("c"))
	got := feed(e, x4)
	if len(got) != 1 || !slices.Equal(got[0].Alert.Evidence, evidenceOf(x1, x3, x4)) || got[0].Alert.Count != 4 {
		t.Fatalf("want the first event of each value and count 4, got %+v", got)
	}
	// A value seen longer ago than the window is forgotten.
	e2 := NewEngine(rs, Options{})
	if got := feed(e2, ev(0, deny, tool("a")), ev(30*time.Second, deny, tool("b")), ev(61*time.Second, deny, tool("c"))); len(got) != 0 {
		t.Fatalf("values further apart than the window fired: %v", ids(got))
	}
}

const trifecta = `
group_by: [session]
sequence:
  window: 10m
  steps:
    - {name: read, match: 'data_class in ["confidential", "pii"]'}
    - {name: send, match: destination == "internet"}
`

func TestSequenceIsOrderedAndWithinTheWindow(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("trifecta", trifecta)})
	cases := []struct {
		name string
		evs  []*event.Event
		want int
	}{
		{"read then send", []*event.Event{ev(0, class("pii")), ev(time.Minute, dest("internet"))}, 1},
		{"send then read", []*event.Event{ev(0, dest("internet")), ev(time.Minute, class("pii"))}, 0},
		{"send after the window", []*event.Event{ev(0, class("pii")), ev(11*time.Minute, dest("internet"))}, 0},
		{"other session", []*event.Event{ev(0, class("pii")), ev(time.Minute, dest("internet"), session("s2"))}, 0},
		{"no session", []*event.Event{ev(0, class("pii"), session("")), ev(time.Minute, dest("internet"), session(""))}, 0},
		{"one event both steps", []*event.Event{ev(0, class("pii"), dest("internet"))}, 0},
		{"sends repeated", []*event.Event{ev(0, class("pii")), ev(time.Minute, dest("internet")), ev(2*time.Minute, dest("internet"))}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngine(rs, Options{})
			if got := feed(e, c.evs...); len(got) != c.want {
				t.Fatalf("%d alerts, want %d: %v", len(got), c.want, ids(got))
			}
		})
	}
	// A later step alone leaves no state behind.
	e := NewEngine(rs, Options{})
	feed(e, ev(0, dest("internet"), session("a")), ev(0, dest("internet"), session("b")))
	if n := len(e.rules[0].groups); n != 0 {
		t.Fatalf("%d groups from second steps alone", n)
	}
	// The latest read before the send is the evidence.
	e = NewEngine(rs, Options{})
	r1, r2, s1 := ev(0, class("pii")), ev(5*time.Minute, class("pii")), ev(12*time.Minute, dest("internet"))
	got := feed(e, r1, r2, s1)
	if len(got) != 1 || !slices.Equal(got[0].Alert.Evidence, evidenceOf(r2, s1)) {
		t.Fatalf("want r2 s1, got %v", ids(got))
	}
}

func TestAllOfInAnyOrder(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("both", strings.Replace(trifecta, "sequence:", "all_of:", 1))})
	for name, evs := range map[string][]*event.Event{
		"read then send": {ev(0, class("pii")), ev(time.Minute, dest("internet"))},
		"send then read": {ev(0, dest("internet")), ev(time.Minute, class("pii"))},
	} {
		e := NewEngine(rs, Options{})
		got := feed(e, evs...)
		if len(got) != 1 || !slices.Equal(got[0].Alert.Evidence, evidenceOf(evs...)) {
			t.Errorf("%s: want one alert of both, got %v", name, ids(got))
		}
	}
	e := NewEngine(rs, Options{})
	if got := feed(e, ev(0, dest("internet")), ev(11*time.Minute, class("pii"))); len(got) != 0 {
		t.Errorf("steps further apart than the window fired: %v", ids(got))
	}
}

func TestNewValueFiresOncePerLookback(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("new-actor", `
match: chain_depth > 0
group_by: [subject]
new_value: {field: actor, lookback: 1h}
`)})
	e := NewEngine(rs, Options{})
	first := ev(0, actorChain("agent:a"))
	got := feed(e, first)
	if len(got) != 1 {
		t.Fatalf("first actor: %d alerts", len(got))
	}
	want := []event.GroupValue{{Field: "subject", Value: "user:alice"}, {Field: "actor", Value: "agent:a"}}
	if !slices.Equal(got[0].Alert.Group, want) {
		t.Fatalf("group %v, want %v", got[0].Alert.Group, want)
	}
	if got := feed(e, ev(30*time.Minute, actorChain("agent:a")), ev(89*time.Minute, actorChain("agent:a"))); len(got) != 0 {
		t.Fatalf("a known actor fired: %v", ids(got))
	}
	if got := feed(e, ev(90*time.Minute, actorChain("agent:b"))); len(got) != 1 {
		t.Fatalf("a second actor: %d alerts", len(got))
	}
	// Unseen for a whole lookback: new again.
	if got := feed(e, ev(89*time.Minute+time.Hour+time.Second, actorChain("agent:a"))); len(got) != 1 {
		t.Fatalf("an actor back after the lookback: %d alerts", len(got))
	}
}

func TestAbsenceFiresAtTheDeadline(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("unrevoked", `
match: tool == "mint"
group_by: [session]
absence: {expect: tool == "revoke", window: 1h}
`)})
	e := NewEngine(rs, Options{})
	m1 := ev(0, tool("mint"), session("a"))
	m2 := ev(time.Minute, tool("mint"), session("b"))
	r2 := ev(59*time.Minute, tool("revoke"), session("b"))
	if got := feed(e, m1, m2, r2); len(got) != 0 {
		t.Fatalf("fired early: %v", ids(got))
	}
	got := e.Advance(t0.Add(2 * time.Hour))
	if len(got) != 1 || got[0].Alert.Group[0].Value != "a" || !got[0].Time.Equal(t0.Add(time.Hour)) || got[0].RequestID != m1.RequestID {
		t.Fatalf("want one alert for a at the deadline naming m1, got %+v", got)
	}
	// A later event's time lapses the window as Advance does.
	e = NewEngine(rs, Options{})
	feed(e, ev(0, tool("mint"), session("c")))
	if got := feed(e, ev(61*time.Minute, tool("other"))); len(got) != 1 {
		t.Fatalf("a later event did not lapse the window: %d alerts", len(got))
	}
	// The expected event after the deadline is too late.
	e = NewEngine(rs, Options{})
	feed(e, ev(0, tool("mint"), session("d")))
	if got := feed(e, ev(61*time.Minute, tool("revoke"), session("d"))); len(got) != 1 {
		t.Fatalf("a late revoke: %d alerts, want the lapse", len(got))
	}
}

func TestAlertIsAReadyEvent(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("burst", `
match: effect == "deny"
group_by: [actor]
event_count: {window: 1h, gte: 5}
`)})
	var evs []*event.Event
	for i := range 5 {
		evs = append(evs, ev(time.Duration(i)*time.Second+time.Duration(i)*time.Millisecond, deny, actorChain("agent:x")))
	}
	run := func(max int) *event.Event {
		got := feed(NewEngine(rs, Options{MaxEvidence: max}), evs...)
		if len(got) != 1 {
			t.Fatalf("%d alerts", len(got))
		}
		return got[0]
	}
	a := run(3)
	last := evs[4]
	published := *a // as the publisher will send it
	published.Instance, published.Seq = "correlator-1", 1
	if err := published.Validate(); err != nil {
		t.Fatalf("alert does not validate: %v", err)
	}
	switch {
	case a.V != event.Version || a.Kind != event.KindAlert || a.Tenant != "acme":
		t.Fatalf("envelope %+v", a)
	case !a.Time.Equal(last.Time) || a.RequestID != last.RequestID:
		t.Fatalf("time %v request %s, want the completing event's", a.Time, a.RequestID)
	case a.Identity == last.Identity || a.Identity.CurrentActor() != "agent:x":
		t.Fatal("identity is not a copy of the completing event's")
	case a.Instance != "" || a.Seq != 0 || a.Epoch != "" || a.Prev != "":
		t.Fatal("the publisher's fields are set")
	case a.Alert.Count != 5 || !slices.Equal(a.Alert.Evidence, evidenceOf(evs[0], evs[3], evs[4])):
		t.Fatalf("count %d evidence %v: want 5 and the first plus the latest two", a.Alert.Count, a.Alert.Evidence)
	case !a.Alert.First.Equal(evs[0].Time) || !a.Alert.Last.Equal(last.Time):
		t.Fatalf("first %v last %v", a.Alert.First, a.Alert.Last)
	case a.Alert.Severity != event.SeverityHigh || a.Alert.RuleID != "burst" || !slices.Equal(a.Alert.Tags, []string{"owasp-llm:LLM06"}):
		t.Fatalf("rule fields %+v", a.Alert)
	}
	last.Identity.Chain[0].Subject = "changed"
	if a.Identity.Chain[0].Subject != "agent:x" {
		t.Fatal("the alert's identity shares the event's chain")
	}
	last.Identity.Chain[0].Subject = "agent:x"
	// The id: ULID time of the first evidence; the same finding, the
	// same id, on any engine and with any evidence bound.
	if want := event.DerivedID(evs[0].Time, [10]byte{})[:10]; a.ID[:10] != want {
		t.Fatalf("id %s: time part is not the first evidence's (%s)", a.ID, want)
	}
	if b := run(64); b.ID != a.ID {
		t.Fatalf("same finding, ids %s and %s", a.ID, b.ID)
	}
	// A different first event is a different finding.
	evs[0].ID = "other"
	if c := run(3); c.ID == a.ID {
		t.Fatal("a different first evidence event kept the id")
	}
}

func TestTenantScopedRuleSeesOnlyItsTenant(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("acme-only", `
tenant: acme
match: effect == "deny"
event_count: {window: 1h, gte: 2}
`)})
	e := NewEngine(rs, Options{})
	if got := feed(e, ev(0, deny, tenant("globex")), ev(time.Second, deny, tenant("globex")), ev(2*time.Second, deny, tenant(""))); len(got) != 0 {
		t.Fatalf("saw other tenants' events: %v", ids(got))
	}
	if len(e.rules[0].groups) != 0 {
		t.Fatal("kept state for another tenant")
	}
	if got := feed(e, ev(3*time.Second, deny), ev(4*time.Second, deny)); len(got) != 1 || got[0].Tenant != "acme" {
		t.Fatalf("its own tenant: %v", got)
	}
}

func TestGroupsOfDifferentTenantsNeverMix(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("burst", `
match: effect == "deny"
group_by: [session]
event_count: {window: 1h, gte: 2}
`)})
	e := NewEngine(rs, Options{})
	if got := feed(e, ev(0, deny, tenant("acme")), ev(time.Second, deny, tenant("globex"))); len(got) != 0 {
		t.Fatalf("one session id in two tenants made one group: %v", ids(got))
	}
}

func TestHostileGroupValuesCannotCollide(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("pair", `
match: effect == "deny"
group_by: [session, tool]
event_count: {window: 1h, gte: 2}
`)})
	huge := strings.Repeat("x", 1<<20)
	pairs := [][2]string{
		{"ab", "c"}, {"a", "bc"}, // the plain concatenations agree
		{"a\x00", "b"}, {"a", "\x00b"}, // NUL where a separator would be
		{"\x01a", "b"}, {"\x01", "ab"}, // a byte that looks like a length prefix
		{huge, "y"}, {huge + "y", ""[0:0] + "z"},
		{"é", "x"}, {"e\u0301", "x"}, // one glyph, two encodings: different values
	}
	e := NewEngine(rs, Options{})
	for i, p := range pairs {
		if got := feed(e, ev(time.Duration(i)*time.Second, deny, session(p[0]), tool(p[1]))); len(got) != 0 {
			t.Fatalf("pair %d (%q, %q) joined another group", i, p[0][:min(len(p[0]), 8)], p[1])
		}
	}
	if n := len(e.rules[0].groups); n != len(pairs) {
		t.Fatalf("%d groups for %d distinct pairs", n, len(pairs))
	}
}

func TestHugeGroupValuesCostNoMoreThanShortOnes(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("pair", `
match: effect == "deny"
group_by: [session]
value_count: {field: tool, window: 1h, gte: 3}
`)})
	e := NewEngine(rs, Options{})
	huge := strings.Repeat("s", 1<<20)
	before := liveHeap()
	for i := range 50 {
		feed(e, ev(time.Duration(i)*time.Millisecond, deny, session(huge+fmt.Sprint(i)), tool(strings.Repeat("t", 1<<20)+fmt.Sprint(i))))
	}
	grown := liveHeap() - before
	if n := len(e.rules[0].groups); n != 50 {
		t.Fatalf("%d groups for 50 distinct huge sessions", n)
	}
	if grown > 50*4096 {
		t.Fatalf("50 groups of 1 MiB values hold %d bytes", grown)
	}
	// Two more tools in one of those sessions fire, and the alert shows
	// the digest, not the megabyte.
	got := feed(e, ev(time.Second, deny, session(huge+"0"), tool("a")), ev(time.Second, deny, session(huge+"0"), tool("b")))
	if len(got) != 1 || !strings.HasPrefix(got[0].Alert.Group[0].Value, "sha256:") || len(got[0].Alert.Group[0].Value) != 71 {
		t.Fatalf("alerts %v", got)
	}
	// A short value that reads like a digest is still its own group.
	e = NewEngine(rs, Options{})
	feed(e, ev(0, deny, session(huge)), ev(0, deny, session(boundedValue(huge))))
	if n := len(e.rules[0].groups); n != 2 {
		t.Fatalf("a digest-looking value joined the digested one: %d groups", n)
	}
}

func TestATenantsFloodCannotEvictAnotherTenant(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("pair", `
match: effect == "deny"
group_by: [session]
event_count: {window: 1h, gte: 2}
`)})
	e := NewEngine(rs, Options{MaxGroupsPerRule: 100, MaxGroupsPerTenant: 10, MaxGroupsPerPrincipal: 10})
	victim := ev(0, deny, tenant("victim"), session("v"))
	feed(e, victim)
	for i := range 1000 {
		feed(e, ev(time.Millisecond*time.Duration(i), deny, tenant("flood"), session(strings.Repeat("f", i%50)+string(rune('a'+i%26)))))
	}
	if got := e.rules[0].tenants["flood"].lru.n; got != 10 {
		t.Fatalf("the flooding tenant holds %d groups, want its share of 10", got)
	}
	got := feed(e, ev(2*time.Second, deny, tenant("victim"), session("v")))
	if len(got) != 1 || got[0].Alert.Evidence[0] != victim.ID {
		t.Fatalf("the victim's group lost its state: %v", ids(got))
	}
	// A new tenant still gets groups while the rule has room.
	feed(e, ev(3*time.Second, deny, tenant("third"), session("t")))
	if e.rules[0].tenants["third"].lru.n != 1 {
		t.Fatal("a third tenant was refused while the rule had room")
	}
}

// TestEvictionIsLeastRecentlyUsed: past a bound the group to give way is
// the one used least recently, of the principal at its bound or else of
// the tenant, so a group still being fed keeps its state.
func TestEvictionIsLeastRecentlyUsed(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("three", `
match: effect == "deny"
group_by: [session]
event_count: {window: 1h, gte: 3}
`)})
	cases := []struct {
		name string
		opts Options
		sub  func(i int) string
	}{
		{"tenant bound", Options{MaxGroupsPerRule: 100, MaxGroupsPerTenant: 3}, func(i int) string { return fmt.Sprint("user:", i) }},
		{"principal bound", Options{MaxGroupsPerRule: 100, MaxGroupsPerTenant: 10, MaxGroupsPerPrincipal: 3}, func(int) string { return "user:mallory" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngine(rs, c.opts)
			kept := ev(0, deny, session("a"), subject(c.sub(0)))
			feed(e, kept, ev(time.Second, deny, session("b"), subject(c.sub(1))), ev(2*time.Second, deny, session("c"), subject(c.sub(2))))
			// a is fed again, below its threshold: b is now the least
			// recently used.
			feed(e, ev(3*time.Second, deny, session("a"), subject(c.sub(0))))
			if got := feed(e, ev(4*time.Second, deny, session("d"), subject(c.sub(3)))); len(got) != 1 || got[0].Alert.RuleID != StateExhaustedRule {
				t.Fatalf("the new group past the bound raised %v, want one exhaustion alert", ids(got))
			}
			if _, ok := e.rules[0].groups[string(appendKeyPart(appendKeyPart(nil, "acme"), "b"))]; ok {
				t.Fatal("b, the least recently used group, was kept")
			}
			if got := feed(e, ev(5*time.Second, deny, session("a"), subject(c.sub(0)))); len(got) != 1 || got[0].Alert.RuleID != "three" || got[0].Alert.Evidence[0] != kept.ID {
				t.Fatalf("a, used recently, lost its state: %v", ids(got))
			}
		})
	}
}

func TestEvaluationErrorsAreNoMatch(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("args", `
match: args.limit > 10
event_count: {window: 1h, gte: 1}
`)})
	e := NewEngine(rs, Options{})
	noArgs := ev(0)
	badArgs := ev(time.Second, func(e *event.Event) { e.Request.Args = []byte(`[1,2]`) })
	wrongType := ev(2*time.Second, func(e *event.Event) { e.Request.Args = []byte(`{"limit": "many"}`) })
	if got := feed(e, noArgs, badArgs, wrongType); len(got) != 0 {
		t.Fatalf("an evaluation error matched: %v", ids(got))
	}
	if got := feed(e, ev(3*time.Second, func(e *event.Event) { e.Request.Args = []byte(`{"limit": 11}`) })); len(got) != 1 {
		t.Fatalf("a real match: %d alerts", len(got))
	}
	// Arguments that are not an object are not "no arguments": a rule
	// asking for their absence does not match them either.
	rs = load(t, map[string]string{"r.yaml": rule("no-args", "match: '!has(args.x)'\nevent_count: {window: 1h, gte: 1}\n")})
	e = NewEngine(rs, Options{})
	if got := feed(e, ev(0, func(e *event.Event) { e.Request.Args = []byte(`"x"`) })); len(got) != 0 {
		t.Fatalf("malformed args read as none: %v", ids(got))
	}
}

func TestARuleDoesNotFeedOnItsOwnAlerts(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("any", `
match: "true"
event_count: {window: 1h, gte: 1}
`)})
	e := NewEngine(rs, Options{})
	got := feed(e, ev(0))
	if len(got) != 1 {
		t.Fatalf("%d alerts", len(got))
	}
	a := got[0]
	a.Instance, a.Seq = "correlator-1", 1
	a.Time = t0.Add(2 * time.Hour) // past the mute of the first alert
	if more := feed(e, a); len(more) != 0 {
		t.Fatalf("the rule fired on its own alert: %v", ids(more))
	}
}

func TestSwapKeepsUnchangedRulesState(t *testing.T) {
	body := `
match: effect == "deny"
event_count: {window: 1h, gte: 2}
`
	rs1 := load(t, map[string]string{"a.yaml": rule("kept", body), "b.yaml": rule("changed", body)})
	rs2 := load(t, map[string]string{"a.yaml": rule("kept", body), "b.yaml": rule("changed", strings.Replace(body, "gte: 2", "gte: 2 # edited\n", 1)+"\n# a comment changes no definition\n"), "c.yaml": rule("added", body)})
	rs3 := load(t, map[string]string{"a.yaml": rule("kept", body), "b.yaml": rule("changed", strings.Replace(body, "1h", "2h", 1))})
	e := NewEngine(rs1, Options{})
	feed(e, ev(0, deny))
	e.Swap(rs2) // the same definitions, differently written
	got := feed(e, ev(time.Second, deny))
	if len(got) != 2 {
		t.Fatalf("after a swap with equal definitions: %d alerts, want kept and changed", len(got))
	}
	e = NewEngine(rs1, Options{})
	feed(e, ev(0, deny))
	e.Swap(rs3)
	got = feed(e, ev(time.Second, deny))
	if len(got) != 1 || got[0].Alert.RuleID != "kept" {
		t.Fatalf("after changing a window: %v, want only kept to fire", got)
	}
}

func TestDeterministicAcrossRuns(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("trifecta", trifecta), "s.yaml": rule("burst", `
match: effect == "deny"
group_by: [session]
event_count: {window: 1m, gte: 2}
`)})
	var evs []*event.Event
	for i := range 200 {
		o := []evOpt{session(string(rune('a' + i%7)))}
		switch i % 3 {
		case 0:
			o = append(o, class("pii"))
		case 1:
			o = append(o, dest("internet"))
		default:
			o = append(o, deny)
		}
		evs = append(evs, ev(time.Duration(i)*7*time.Second, o...))
	}
	a, b := Run(rs, evs, t0.Add(time.Hour), Options{}), Run(rs, evs, t0.Add(time.Hour), Options{})
	if len(a) == 0 || !slices.EqualFunc(a, b, func(x, y *event.Event) bool { return x.ID == y.ID }) {
		t.Fatalf("runs differ or are empty: %d and %d alerts", len(a), len(b))
	}
	seen := map[string]bool{}
	for _, x := range a {
		if seen[x.ID] {
			t.Fatalf("alert id %s twice", x.ID)
		}
		seen[x.ID] = true
	}
}

func TestStateIsDroppedWhenWindowsLapse(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("burst", `
match: effect == "deny"
group_by: [session]
event_count: {window: 1m, gte: 100}
`)})
	e := NewEngine(rs, Options{})
	for i := range 500 {
		feed(e, ev(time.Duration(i)*time.Millisecond, deny, session(string(rune(0x4e00+i)))))
	}
	if n := len(e.rules[0].groups); n != 500 {
		t.Fatalf("%d groups", n)
	}
	e.Advance(t0.Add(time.Minute + time.Second))
	if n, h := len(e.rules[0].groups), len(e.rules[0].expiry); n != 0 || h != 0 {
		t.Fatalf("%d groups and %d heap entries left after every window lapsed", n, h)
	}
}
