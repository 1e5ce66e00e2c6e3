package correlator

import (
	"reflect"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/event"
)

func TestApplyIgnoresRedeliveryAndKeepsLongestChain(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(at int, kind event.Kind, effect event.Effect, actors ...string) *event.Event {
		id := &event.Identity{Subject: "user:a", SessionID: "s", TaskID: "t"}
		for _, a := range actors {
			id.Chain = append(id.Chain, event.Actor{Subject: a})
		}
		e := &event.Event{Kind: kind, Time: t0.Add(time.Duration(at) * time.Second), Identity: id}
		if kind == event.KindDecision {
			e.Decision = &event.Decision{Effect: effect}
		}
		return e
	}
	s := &Session{}
	steps := []struct {
		e       *event.Event
		seq     uint64
		applied bool
	}{
		{ev(5, event.KindRequest, "", "agent:p", "agent:r"), 10, true},
		{ev(6, event.KindDecision, event.EffectDeny, "agent:p", "agent:r"), 11, true},
		{ev(6, event.KindDecision, event.EffectDeny, "agent:p", "agent:r"), 11, false}, // redelivered
		{ev(1, event.KindRequest, "", "agent:p"), 12, true},                            // older event, later seq
		{ev(2, event.KindDecision, event.EffectAllow, "agent:p"), 9, false},            // below the high-water mark
	}
	for i, st := range steps {
		if got := s.apply([]*event.Event{st.e}, st.seq); got != st.applied {
			t.Fatalf("step %d: applied = %v, want %v", i, got, st.applied)
		}
	}
	want := &Session{
		FirstSeen: t0.Add(time.Second), LastSeen: t0.Add(6 * time.Second), Principal: "user:a",
		Agents: []string{"agent:r", "agent:p"}, Chain: []string{"user:a", "agent:p", "agent:r"}, Tasks: []string{"t"},
		Requests: 2, Denied: 1, LastStreamSeq: 12,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("session\n got %+v\nwant %+v", s, want)
	}
}

func TestParseListRoundTripsFormatValue(t *testing.T) {
	for _, in := range [][]string{nil, {"a"}, {"a", "b"}, {"o'brien", `back\slash`, "x','y"}} {
		printed := chstore.FormatValue(in)
		if got := parseList(printed); !reflect.DeepEqual(got, in) {
			t.Errorf("parseList(%s) = %q, want %q", printed, got, in)
		}
	}
}

// The events of one message share its stream sequence: all of them count
// once, each in its own session, and the message's redelivery counts none.
func TestBundledMessageCountsOnceInEachSession(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(session string, kind event.Kind) *event.Event {
		e := &event.Event{Kind: kind, Tenant: "acme", Time: at, Identity: &event.Identity{Subject: "user:a", SessionID: session}}
		if kind == event.KindDecision {
			e.Decision = &event.Decision{Effect: event.EffectAllow}
		}
		return e
	}
	message := []*event.Event{ev("s1", event.KindRequest), ev("s1", event.KindDecision), ev("s2", event.KindResponse),
		{Kind: event.KindResponse, Tenant: "acme", Time: at}} // no session: not correlated
	sessions := map[sessionKey]*Session{}
	for range 2 { // delivered, then redelivered
		for k, events := range bySession(message) {
			if sessions[k] == nil {
				sessions[k] = &Session{}
			}
			sessions[k].apply(events, 7)
		}
	}
	s1, s2 := sessions[sessionKey{"acme", "s1"}], sessions[sessionKey{"acme", "s2"}]
	if len(sessions) != 2 || s1.Requests != 1 || s1.Allowed != 1 || s1.Responses != 0 || s2.Responses != 1 || s2.Requests != 0 {
		t.Fatalf("sessions = %d, s1 %+v, s2 %+v; want s1 one request allowed, s2 one response", len(sessions), s1, s2)
	}
}
