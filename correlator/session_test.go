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
		if got := s.apply(st.e, st.seq); got != st.applied {
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
