package detect

import (
	"fmt"
	"testing"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

func TestKindPrefilterOnlySkipsWhatCannotMatch(t *testing.T) {
	dec, resp, pol := kindBit(event.KindDecision), kindBit(event.KindResponse), kindBit(event.KindPolicy)
	cases := []struct {
		src  string
		want kindMask
	}{
		{`kind == "decision"`, dec},
		{`"decision" == kind`, dec},
		{`kind == "decision" && effect == "deny"`, dec},
		{`effect == "deny" && (tool == "x" && kind == "response")`, resp},
		{`kind in ["decision", "policy"] && code != ""`, dec | pol},
		{`kind == "decision" || kind == "response"`, 0},
		{`!(kind == "decision")`, 0},
		{`kind != "decision"`, 0},
		{`effect == "deny"`, 0},
		{`kind in [tool]`, 0},
		{`kind == "future_kind"`, kindBit("future_kind")},
		{`kind == "decision" && kind == "response"`, 1 << 14},
	}
	for _, c := range cases {
		x, err := compileExpr("match", c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if x.kinds != c.want {
			t.Errorf("%s: kinds %b, want %b", c.src, x.kinds, c.want)
		}
	}
	// An event of a kind this version does not know still reaches a rule
	// naming that kind.
	rs := load(t, map[string]string{"r.yaml": rule("future", "match: kind == \"credential\"\nevent_count: {window: 1m, gte: 1}\n")})
	e := NewEngine(rs, Options{})
	x := ev(0)
	x.Kind = "credential"
	if got := feed(e, x); len(got) != 1 {
		t.Fatalf("a future kind: %d alerts", len(got))
	}
}

func TestEqualityPrefilterAgreesWithCEL(t *testing.T) {
	srcs := []string{
		`kind == "decision" && effect == "deny"`,
		`effect == "allow" && data_class in ["confidential", "pii"]`,
		`"deny" == effect && (tool == "a" || tool == "b")`,
		`code == "x" || effect == "deny"`,
		`!(effect == "deny")`,
		`effect == "deny" && tool != ""`,
		`inventory_loaded && !agent_registered`,
		`effect == "deny" && agent_risk_tier == "high"`,
		`agent_registered || effect == "deny"`,
		`!(inventory_loaded && agent_registered) && agent_owner in ["alice", "bob"]`,
		`!inventory_loaded`,
	}
	evs := []*event.Event{ev(0), ev(0, deny), ev(0, deny, tool("a")), ev(0, class("pii")), ev(0, class("public")), ev(0, code("x"))}
	agents := []ddl.Agent{{}, {Inventory: "v1"}, {Inventory: "v1", Registered: true, Owner: "alice", RiskTier: "high"}, {Inventory: "v1", Registered: true, Owner: "carol", RiskTier: "low"}}
	for _, src := range srcs {
		x, err := compileExpr("match", src)
		if err != nil {
			t.Fatal(err)
		}
		plain := *x
		plain.eqs, plain.kinds, plain.guard = nil, 0, nil
		a := newActivation()
		for i, e := range evs {
			for j, ag := range agents {
				a.reset(e)
				a.agent = ag
				got, err1 := x.eval(a)
				want, err2 := plain.eval(a)
				if got != want || (err1 == nil) != (err2 == nil) {
					t.Errorf("%s on event %d, agent %d: prefiltered %v (%v), CEL %v (%v)", src, i, j, got, err1, want, err2)
				}
			}
		}
	}
	x, _ := compileExpr("match", `effect == "deny" && (tool == "a" || tool == "b")`)
	if len(x.eqs) != 1 {
		t.Fatalf("constraints %+v, want only the top-level effect", x.eqs)
	}
	// The inventory rules' conjuncts are prefiltered too.
	x, _ = compileExpr("match", `kind == "decision" && inventory_loaded && !agent_registered && agent_risk_tier == "high"`)
	if len(x.eqs) != 3 {
		t.Fatalf("constraints %+v, want inventory_loaded, agent_registered and agent_risk_tier", x.eqs)
	}
}

// TestGuardKeepsTheMeterAndTheResult: a metered expression gets a guard of
// its cheap conjuncts, which only skips evaluations the whole would find
// false; the whole still runs, metered, when the guard holds.
func TestGuardKeepsTheMeterAndTheResult(t *testing.T) {
	x, err := compileExpr("match", `kind == "decision" && chain_depth > 1 && chain.exists(a, chain.filter(b, b == a).size() > 1)`)
	if err != nil {
		t.Fatal(err)
	}
	if x.guard == nil {
		t.Fatal("no guard for a metered expression with cheap conjuncts")
	}
	cheap, err := compileExpr("match", `kind == "decision" && chain_depth > 1`)
	if err != nil || cheap.guard != nil {
		t.Fatalf("an unmetered expression got a guard (%v)", err)
	}
	a := newActivation()
	for _, c := range []struct {
		chain []string
		want  bool
	}{
		{[]string{"agent:a", "agent:b", "agent:a"}, true},
		{[]string{"agent:a", "agent:b"}, false},
		{[]string{"agent:a"}, false},
	} {
		a.reset(ev(0, actorChain(c.chain...)))
		if got, err := x.eval(a); got != c.want || err != nil {
			t.Errorf("chain %v: %v %v, want %v", c.chain, got, err, c.want)
		}
	}
	// The cost limit still holds where the guard lets the whole run.
	long := make([]string, 2000)
	for i := range long {
		long[i] = fmt.Sprintf("agent:%d", i)
	}
	a.reset(ev(0, actorChain(long...)))
	if got, err := x.eval(a); got || err == nil {
		t.Fatalf("a 2,000-actor chain: %v %v, want the cost limit's error", got, err)
	}
}

func TestLookupFieldFindsEveryNameAndNoOther(t *testing.T) {
	collisions := 0
	for i, f := range fields {
		if j, ok := lookupField(f.name); !ok || j != i {
			t.Errorf("%s: slot %d %v, want %d", f.name, j, ok, i)
		}
		if nameSlots[nameHash(f.name)] == -2 {
			collisions++
		}
	}
	for _, name := range []string{"", "kinds", "Kind", "toolx", "x", "session_idx", "alert"} {
		if _, ok := lookupField(name); ok {
			t.Errorf("%q found", name)
		}
	}
	t.Logf("%d of %d names share a slot", collisions, len(fields))
}
