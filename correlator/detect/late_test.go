package detect

import (
	"errors"
	"testing"
	"testing/fstest"
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

// TestAbsenceDeadlineFromTheEvent: each group waits until the deadline
// its opening event gives, bounded by the window; a deadline that cannot
// be read waits the window.
func TestAbsenceDeadlineFromTheEvent(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("unrevoked", `
match: kind == "credential" && credential_action == "issued"
group_by: [credential_jti]
absence:
  expect: kind == "credential" && credential_action == "revoked"
  deadline: credential_expires + duration("10m")
  window: 2h
`)})
	cred := func(at time.Duration, action event.CredentialAction, jti string, life time.Duration) *event.Event {
		e := ev(at)
		e.Kind, e.Decision, e.Request = event.KindCredential, nil, nil
		e.Credential = &event.Credential{Action: action, JTI: jti, Audience: "https://files"}
		if life != 0 {
			e.Credential.Expires = t0.Add(life)
		}
		return e
	}
	cases := []struct {
		name   string
		events []*event.Event
		// ticks: the clock moves to each; want the alert (by jti) each
		// raises, and at what deadline.
		ticks []time.Duration
		want  []map[string]time.Duration
	}{
		{
			name:   "a five-minute credential never revoked fires at exp plus grace",
			events: []*event.Event{cred(0, event.CredentialIssued, "short", 5*time.Minute), cred(time.Second, event.CredentialIssued, "long", time.Hour)},
			ticks:  []time.Duration{15 * time.Minute, 15*time.Minute + time.Second, 70*time.Minute + time.Second},
			want:   []map[string]time.Duration{{}, {"short": 15 * time.Minute}, {"long": 70 * time.Minute}},
		},
		{
			name: "an hour credential revoked in time does not fire",
			events: []*event.Event{cred(0, event.CredentialIssued, "long", time.Hour),
				cred(59*time.Minute, event.CredentialRevoked, "long", time.Hour)},
			ticks: []time.Duration{3 * time.Hour},
			want:  []map[string]time.Duration{{}},
		},
		{
			name:   "a deadline past the window waits the window",
			events: []*event.Event{cred(0, event.CredentialIssued, "day", 24*time.Hour)},
			ticks:  []time.Duration{2*time.Hour + time.Second},
			want:   []map[string]time.Duration{{"day": 2 * time.Hour}},
		},
		{
			name:   "a credential without exp waits the window",
			events: []*event.Event{cred(0, event.CredentialIssued, "noexp", 0)},
			ticks:  []time.Duration{time.Hour, 2*time.Hour + time.Second},
			want:   []map[string]time.Duration{{}, {"noexp": 2 * time.Hour}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngine(rs, Options{})
			defer e.Close()
			if got := feed(e, c.events...); len(got) != 0 {
				t.Fatalf("the events raised %d alerts", len(got))
			}
			for i, tick := range c.ticks {
				got := map[string]time.Duration{}
				for _, a := range e.Advance(t0.Add(tick)) {
					got[a.Alert.Group[0].Value] = a.Time.Sub(t0)
				}
				if !mapsEqualDur(got, c.want[i]) {
					t.Fatalf("advance to %s raised %v, want %v", tick, got, c.want[i])
				}
			}
		})
	}
}

func mapsEqualDur(a, b map[string]time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestAbsenceDeadlineMustBeATimestamp(t *testing.T) {
	_, err := LoadFS(fstest.MapFS{"r.yaml": {Data: []byte(rule("bad", `
match: kind == "credential"
group_by: [credential_jti]
absence: {expect: kind == "credential", deadline: credential_action, window: 1h}
`))}}, "test")
	if !errors.Is(err, ErrNotTimestamp) {
		t.Fatalf("a string deadline loaded: %v, want %s", err, CodeNotTimestamp)
	}
}

// TestLateCredentialFiresAtItsOwnDeadline: a credential's issue delivered
// behind the clock fires once the stream passes its own exp plus grace,
// not at the rule's window nor at the end of its keep.
func TestLateCredentialFiresAtItsOwnDeadline(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("unrevoked", `
match: kind == "credential" && credential_action == "issued"
group_by: [credential_jti]
absence:
  expect: kind == "credential" && credential_action == "revoked"
  deadline: credential_expires + duration("10m")
  window: 24h
`)})
	e := NewEngine(rs, Options{})
	defer e.Close()
	e.Advance(t0.Add(3 * time.Hour))
	issue := func(at time.Duration, jti string, life time.Duration) *event.Event {
		x := ev(at)
		x.Kind, x.Decision, x.Request = event.KindCredential, nil, nil
		x.Credential = &event.Credential{Action: event.CredentialIssued, JTI: jti, Expires: t0.Add(life)}
		return x
	}
	// The hour's credential first: the late heap must re-sort when the
	// five minutes' deadline comes in under it.
	if got := feed(e, issue(0, "hour", time.Hour), issue(time.Second, "five", 5*time.Minute)); len(got) != 0 {
		t.Fatalf("the issues raised %d alerts", len(got))
	}
	if got := e.Observe(ev(15 * time.Minute)); len(got) != 0 {
		t.Fatalf("an event at the deadline raised %v", ruleIDs(got))
	}
	got := e.Observe(ev(15*time.Minute + time.Second))
	if len(got) != 1 || got[0].Alert.Group[0].Value != "five" || !got[0].Time.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("an event past exp+10m raised %v, want five's lapse at 15m", got)
	}
}
