package correlator_test

import (
	"testing"
	"time"

	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/event"
)

// An actor new for a principal is reported once per lookback, although
// the lookback (30 days) is far past the replay horizon: a restart does not
// report the actors seen before it as new again; a truly new one still is.
func TestNewValueLookbackSurvivesRestartPastTheHorizon(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	copyRule(t, dir, "delegation-new-actor.yaml")
	set := func(c *correlator.Config) {
		c.Detect.Shipped, c.Detect.RulesDir = false, dir
		c.Detect.Recovery.Horizon = time.Second
	}
	stop := r.startWith(set)
	r.pub.send(t, "acme", "s1", event.KindDecision, event.EffectAllow, "agent:a")
	r.waitAlerts(map[string]int{"acme/user:alice": 1})
	r.waitIdle("correlator-detect")
	stop()
	time.Sleep(1500 * time.Millisecond) // the first sighting falls out of the replay horizon

	r.startWith(set)
	r.pub.send(t, "acme", "s1", event.KindDecision, event.EffectAllow, "agent:a") // seen 1.5s ago: not new
	r.pub.send(t, "acme", "s1", event.KindDecision, event.EffectAllow, "agent:b") // new
	r.waitIdle("correlator-detect")
	got := map[string]int{}
	for _, e := range r.stored() {
		if e.Kind == event.KindAlert {
			got[e.Alert.Group[len(e.Alert.Group)-1].Value]++
		}
	}
	if got["agent:a"] != 1 || got["agent:b"] != 1 || len(got) != 2 {
		t.Fatalf("new-actor alerts by actor %v, want agent:a and agent:b once each", got)
	}
}
