package detect

import (
	"github.com/rampart-io/rampart/schema/event"
	"testing"
	"time"
)

// The live correlator moves the engine's clock on the wall clock when idle
// (its tick Advances to now minus a 40ms lateness); a replay moves it on
// event times only. Events of an enforcer whose clock runs behind the
// correlator's (or that publishes late) then arrive behind the engine's
// clock: each opens a group whose window already lapsed, dropped at the
// next Advance, so the live engine never sees ten denials in one group
// while a replay of the same events does. The two must agree.
func TestAttackLateEnforcerLiveAndReplayDiverge(t *testing.T) {
	rs := load(t, map[string]string{"burst.yaml": rule("burst",
		"match: kind == \"decision\" && effect == \"deny\"\ngroup_by: [actor]\nevent_count: {window: 1m, gte: 10}\n")})
	var evs = make([]*event.Event, 0)
	for i := range 10 {
		evs = append(evs, ev(time.Duration(i)*time.Second, deny))
	}
	replay := Run(rs, evs, time.Time{}, Options{})

	live := NewEngine(rs, Options{})
	defer live.Close()
	var got int
	for _, x := range evs {
		// The enforcer's clock is two minutes behind: when its event
		// arrives the tick has already moved the engine to wall time.
		got += len(live.Advance(x.Time.Add(2 * time.Minute)))
		got += len(live.Observe(x))
	}
	if len(replay) != 1 || got != len(replay) {
		t.Errorf("replay raised %d alerts, the live engine %d over the same 10 denials in 10s", len(replay), got)
	}
}
