package replay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/internal/replay"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestLateSpoolLiveEqualsReplay: an enforcer spools its events through a
// NATS outage and delivers them when the stream is back. The live
// correlator's idle tick moved its clock on by the wall clock meanwhile,
// so the whole spool arrives behind it, in batches with ticks between.
// The live engine must raise the same alerts, with the same ids, as
// `rampart detect replay` over the same events: the spool's 1m and 5m
// windows are not lost to the clock, and a call whose response is only in
// the next batch is not reported as unanswered.
func TestLateSpoolLiveEqualsReplay(t *testing.T) {
	ctx := context.Background()
	rs := detect.Shipped()
	n := 0
	mk := func(at time.Duration, kind event.Kind, req string, opts ...func(*event.Event)) *event.Event {
		n++
		e := &event.Event{V: event.Version, ID: fmt.Sprintf("01LATE%04d", n), Kind: kind, Time: t0.Add(at), Tenant: "acme",
			Instance: "enf-1", Epoch: "ep-1", Seq: uint64(n), RequestID: req,
			Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: "agent:a"}}},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "shell"}}
		switch kind {
		case event.KindDecision:
			e.Decision = &event.Decision{Effect: event.EffectDeny, PolicyID: "p", RuleID: "deny-shell"}
		case event.KindResponse:
			e.Response = &event.Response{Status: 200}
		}
		for _, o := range opts {
			o(e)
		}
		return e
	}
	allow := func(e *event.Event) {
		e.Decision.Effect, e.Decision.RuleID, e.Request.Tool = event.EffectAllow, "allow", "search"
	}
	// Before the outage: one call, answered.
	before := []*event.Event{mk(0, event.KindDecision, "r0", allow), mk(time.Second, event.KindResponse, "r0")}
	// The spool, from minute 10 on: ten denials within 30s, a call never
	// answered, a call whose response comes 2s later, in the next batch,
	// and one answered 6 minutes late.
	var spool []*event.Event
	for i := range 10 {
		spool = append(spool, mk(10*time.Minute+time.Duration(i)*3*time.Second, event.KindDecision, fmt.Sprint("d", i)))
	}
	spool = append(spool, mk(11*time.Minute, event.KindDecision, "r2", allow),
		mk(12*time.Minute, event.KindDecision, "r1", allow), mk(12*time.Minute+2*time.Second, event.KindResponse, "r1"),
		mk(13*time.Minute, event.KindDecision, "r3", allow), mk(19*time.Minute, event.KindResponse, "r3"))

	// Live: the tick moves the clock to the wall clock (less lateness)
	// once batches stop; the outage lasted an hour; the spool comes in
	// batches of four, a tick between each.
	live := detect.NewEngine(rs, detect.Options{})
	defer live.Close()
	var got []*event.Event
	wall := t0.Add(time.Minute)
	for _, e := range before {
		got = append(got, live.Observe(e)...)
	}
	got = append(got, live.Advance(wall)...)
	wall = wall.Add(time.Hour)
	got = append(got, live.Advance(wall)...)
	for i, e := range spool {
		if i%4 == 0 {
			wall = wall.Add(2 * time.Second)
			got = append(got, live.Advance(wall)...)
		}
		got = append(got, live.Observe(e)...)
	}
	// The spool's own events pass the unanswered calls' deadlines: they
	// fire then, not one window of the clock after the spool came.
	unanswered := 0
	for _, a := range got {
		if a.Alert.RuleID == "response-missing" {
			unanswered++
		}
	}
	if unanswered != 2 {
		t.Errorf("by the spool's last event the live engine raised %d response-missing alerts, want 2 (r2 and r3): a late group waited for its keep", unanswered)
	}
	to := t0.Add(3 * time.Hour)
	got = append(got, live.Advance(to)...)

	// The reference: the same events stored, in stream order, replayed.
	ch := chtest.New(t)
	var rows [][]any
	for i, e := range append(slices.Clone(before), spool...) {
		rows = append(rows, ddl.EventRow(e, uint64(i+1), t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	var want []*event.Event
	if _, err := replay.Run(ctx, ch, replay.Options{Range: chstore.Range{From: t0, To: to}, Rules: rs}, func(a *event.Event) error {
		want = append(want, a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	summary := func(alerts []*event.Event) []string {
		var out []string
		for _, a := range alerts {
			out = append(out, a.Alert.RuleID+" "+a.ID+" "+fmt.Sprint(a.Alert.Evidence))
		}
		slices.Sort(out)
		return out
	}
	if g, w := summary(got), summary(want); !slices.Equal(g, w) {
		t.Errorf("live alerts differ from the replay's:\n live   %q\n replay %q", g, w)
	}
	// And the replay found what the spool holds.
	rules := map[string]int{}
	for _, a := range want {
		rules[a.Alert.RuleID]++
	}
	if rules["probing-denial-burst"] != 1 || rules["response-missing"] != 2 {
		t.Errorf("replay raised %v, want one probing-denial-burst and two response-missing (of r2 and r3)", rules)
	}
}
