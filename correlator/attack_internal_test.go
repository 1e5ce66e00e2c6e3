package correlator

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/event"
)

// Observing an event first moves the engine's clock, so windows of any
// tenant that lapsed before it fire then (absence, at most N, gap). The
// detection queues what Observe returns under the observed event's tenant
// and drops, as an engine fault, every alert of another tenant: the lapse
// alerts of one tenant raised on another tenant's event are lost. A tenant
// that keeps its own traffic flowing (so the idle tick never advances the
// clock) has every other tenant's response-missing alerts raised on its
// events, and dropped.
func TestAttackLapseAlertsOfOtherTenantsDropped(t *testing.T) {
	d := &detection{log: slog.New(slog.NewTextHandler(io.Discard, nil)), engine: detect.NewEngine(detect.Shipped(), detect.Options{}),
		observed: map[uint64]time.Time{}}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	mk := func(seq uint64, tenant string, kind event.Kind, at time.Duration) *event.Event {
		e := &event.Event{V: event.Version, ID: fmt.Sprintf("E%03d", seq), Kind: kind, Time: t0.Add(at),
			Tenant: tenant, Instance: "enforcer-1", Seq: seq, RequestID: fmt.Sprintf("R%03d", seq),
			Identity: &event.Identity{Subject: "user:" + tenant},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "transfer"}}
		if kind == event.KindDecision {
			e.Decision = &event.Decision{Effect: event.EffectAllow}
		}
		return e
	}
	// globex's call never gets its response; acme's traffic goes on.
	lost := mk(1, "globex", event.KindDecision, 0)
	d.observeLocked(1, []*event.Event{lost})
	for i := uint64(2); i < 12; i++ {
		d.observeLocked(i, []*event.Event{mk(i, "acme", event.KindDecision, time.Duration(i)*time.Minute)})
		resp := mk(100+i, "acme", event.KindResponse, time.Duration(i)*time.Minute+time.Second)
		resp.RequestID = fmt.Sprintf("R%03d", i)
		d.observeLocked(100+i, []*event.Event{resp})
	}
	var cited bool
	for _, a := range d.pending {
		if a.Alert.RuleID == "response-missing" && a.Tenant == "globex" {
			cited = true
		}
	}
	if !cited {
		t.Errorf("globex's call %s without a response, 11 minutes on, is in none of %d pending alerts", lost.ID, len(d.pending))
	}
}
