package verify_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestCheckRangesReadsPastItsWindow: a range is read within its events'
// time window, but an event of the chain stamped far outside it (another
// session's, from a slow request) is still part of the range: it must be
// found by reading the whole range, not reported as deleted.
func TestCheckRangesReadsPastItsWindow(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	l := chain.NewLinker("enf-1", "ep-1")
	var rows [][]any
	for i, at := range []time.Time{t0, t0.Add(-30 * time.Minute), t0.Add(time.Second), t0.Add(2 * time.Second)} {
		e := &event.Event{V: event.Version, ID: "ev-" + string(rune('a'+i)), Kind: event.KindDecision, Time: at, Tenant: "acme",
			Request: &event.Request{Method: "POST", Path: "/mcp", Tool: "search"}, Decision: &event.Decision{Effect: event.EffectAllow, RuleID: "r"}}
		l.Link(e)
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	r := verify.Range{Instance: "enf-1", Epoch: "ep-1", From: 1, To: 3, First: t0, Last: t0.Add(time.Second)}
	rep, err := verify.CheckRanges(ctx, ch, []verify.Range{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Events != 4 {
		t.Fatalf("%d events, findings %v; want 4 events (the range's 3 and the one after) and none", rep.Events, rep.Findings)
	}
}

// TestCheckRangesLastEventRewritten: only the event after an event
// vouches for its content (its prev_hash), so a range whose last event was
// rewritten in storage is found by reading the link out of the range, even
// when that event lies far past the range's time window.
func TestCheckRangesLastEventRewritten(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	l := chain.NewLinker("enf-1", "ep-1")
	var rows [][]any
	for i, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(time.Hour)} {
		e := &event.Event{V: event.Version, ID: "ev-" + string(rune('a'+i)), Kind: event.KindDecision, Time: at, Tenant: "acme",
			Request: &event.Request{Method: "POST", Path: "/mcp", Tool: "search"}, Decision: &event.Decision{Effect: event.EffectDeny, RuleID: "r"}}
		l.Link(e)
		if i == 2 {
			e.Decision.Effect = event.EffectAllow // rewritten after it was chained
		}
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	r := verify.Range{Instance: "enf-1", Epoch: "ep-1", From: 1, To: 3, First: t0, Last: t0.Add(2 * time.Second)}
	rep, err := verify.CheckRanges(ctx, ch, []verify.Range{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Seq != 3 {
		t.Fatalf("findings %v, want the rewritten seq 3", rep.Findings)
	}
}

// TestCheckRangesDeepInAChain: a range is checked from its own start, so
// the chain before it is neither read nor reported, but an event deleted
// inside the range still is.
func TestCheckRangesDeepInAChain(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var rows [][]any
	for _, e := range rangeChain(8, t0) {
		if e.Seq == 1 || e.Seq == 5 {
			continue // seq 1 lies before the range, seq 5 inside it
		}
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	r := verify.Range{Instance: "enf-1", Epoch: "ep-1", From: 4, To: 6, First: t0.Add(3 * time.Second), Last: t0.Add(5 * time.Second)}
	rep, err := verify.CheckRanges(ctx, ch, []verify.Range{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Seq != 5 || rep.Findings[0].Kind != chain.Deleted {
		t.Fatalf("findings %v, want seq 5 deleted", rep.Findings)
	}
}

// rangeChain links n decisions of one chain, a second apart from t0.
func rangeChain(n int, t0 time.Time) []*event.Event {
	l := chain.NewLinker("enf-1", "ep-1")
	var evs []*event.Event
	for i := range n {
		e := &event.Event{V: event.Version, ID: fmt.Sprintf("ev-%d", i+1), Kind: event.KindDecision, Time: t0.Add(time.Duration(i) * time.Second), Tenant: "acme",
			Request: &event.Request{Method: "POST", Path: "/mcp", Tool: "search"}, Decision: &event.Decision{Effect: event.EffectDeny, RuleID: "r"}}
		l.Link(e)
		evs = append(evs, e)
	}
	return evs
}

// An attacker who rewrites a range's last event and stores a second copy
// of its successor linking to the rewrite, or who deletes an event inside
// the range and stores beside the successor a checkpoint of bad signature
// calling it unrecorded, leaves findings on the neighbours CheckRanges
// reads: they are named, not dropped as outside the range.
func TestCheckRangesNamesWhatItsNeighboursShow(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	pub, _, _ := ed25519.GenerateKey(nil)
	keys := map[string]ed25519.PublicKey{"k1": pub}
	r := verify.Range{Instance: "enf-1", Epoch: "ep-1", From: 3, To: 6, First: t0.Add(2 * time.Second), Last: t0.Add(5 * time.Second)}
	for name, tamper := range map[string]func([]*event.Event) []*event.Event{
		"last rewritten, a copy of the successor links to it": func(e []*event.Event) []*event.Event {
			e[5].Decision.Effect = event.EffectAllow
			c := *e[6]
			c.Prev, c.ID = chain.Of(e[5]).String(), "other"
			return append(e, &c)
		},
		"deleted inside, an unsigned checkpoint calls it unrecorded": func(e []*event.Event) []*event.Event {
			cp := *e[6]
			cp.ID, cp.Kind, cp.Request, cp.Decision = "cp-forged", event.KindCheckpoint, nil, nil
			cp.Checkpoint = &event.Checkpoint{KeyID: "k1", Signature: "AAAA", Unrecorded: []uint64{5}}
			return append(append(e[:4:4], e[5:]...), &cp)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ch := chtest.New(t)
			var rows [][]any
			for _, e := range tamper(rangeChain(9, t0)) {
				rows = append(rows, ddl.EventRow(e, e.Seq, t0))
			}
			if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
				t.Fatal(err)
			}
			rep, err := verify.CheckRanges(ctx, ch, []verify.Range{r}, keys)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Clean() {
				t.Fatalf("tampered range verifies: findings %v", rep.Findings)
			}
		})
	}
}
