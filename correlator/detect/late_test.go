package detect

import (
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// TestLateLapseFiresAtItsDeadline: a group opened behind the clock (a
// spool delivered after the idle tick moved the clock on) is kept for the
// rest of the spool, but it fires as soon as the stream's events pass its
// deadline, as a replay of the same events would, not one window of the
// clock later.
func TestLateLapseFiresAtItsDeadline(t *testing.T) {
	rs := load(t, map[string]string{
		"absence.yaml": rule("unanswered", `
match: tool == "call"
group_by: [session]
absence: {expect: tool == "answer", window: 5m}
`),
		"lte.yaml": rule("quiet", `
match: tool == "beat"
group_by: [session]
event_count: {window: 5m, lte: 1}
`),
	})
	cases := []struct {
		name string
		// clock is where the idle tick moved the clock before the spool.
		clock time.Duration
		spool []*event.Event
		// fired maps a spool index to the rules whose lapse its
		// observation must raise; no other spool event raises any.
		fired map[int][]string
	}{
		{
			name:  "outage longer than the window: deadline already behind the clock",
			clock: time.Hour,
			spool: []*event.Event{
				ev(0, tool("call"), session("a")),
				ev(time.Second, tool("beat"), session("a")),
				ev(2*time.Minute, tool("call"), session("b")),
				ev(3*time.Minute, tool("answer"), session("b")), // b answered in time
				ev(5*time.Minute+2*time.Second, tool("other"), session("z")),
			},
			fired: map[int][]string{4: {"unanswered", "quiet"}},
		},
		{
			name:  "outage shorter than the window: deadline still ahead of the clock",
			clock: time.Minute,
			spool: []*event.Event{
				ev(0, tool("call"), session("a")),
				ev(time.Second, tool("beat"), session("a")),
				ev(5*time.Minute+2*time.Second, tool("other"), session("z")),
			},
			fired: map[int][]string{2: {"unanswered", "quiet"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngine(rs, Options{})
			defer e.Close()
			if got := e.Advance(t0.Add(c.clock)); len(got) != 0 {
				t.Fatalf("the tick raised %d alerts", len(got))
			}
			for i, x := range c.spool {
				// A tick between spool events, as the idle loop gives.
				if got := e.Advance(t0.Add(c.clock + time.Duration(i)*time.Second)); len(got) != 0 {
					t.Fatalf("a tick before spool event %d raised %v: a late group fired on the clock before its late evidence came", i, ruleIDs(got))
				}
				got := ruleIDs(e.Observe(x))
				want := c.fired[i]
				if len(got) != len(want) || !sameSet(got, want) {
					t.Fatalf("spool event %d (at %s) raised %v, want %v", i, x.Time.Sub(t0), got, want)
				}
			}
		})
	}
}

func ruleIDs(alerts []*event.Event) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Alert.RuleID)
	}
	return out
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
