package detect

import (
	"slices"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

func TestGapFindsMissingSequenceNumbers(t *testing.T) {
	rs := load(t, map[string]string{"r.yaml": rule("gap", `
match: kind != "alert"
group_by: [instance, epoch]
gap: {grace: 1m, window: 1h}
`)})
	at := func(i int) time.Duration { return time.Duration(i) * time.Second }
	mk := func(i int, seq uint64, opts ...evOpt) *event.Event {
		x := ev(at(i), opts...)
		x.Seq, x.Instance, x.Epoch = seq, "enf-1", "ep1"
		return x
	}
	epoch := func(ep string) evOpt { return func(e *event.Event) { e.Epoch = ep } }
	checkpoint := func(unrecorded ...uint64) evOpt {
		return func(e *event.Event) {
			e.Kind, e.Decision, e.Request = event.KindCheckpoint, nil, nil
			e.Checkpoint = &event.Checkpoint{KeyID: "k", Signature: "c2ln", Unrecorded: unrecorded}
		}
	}
	type want struct {
		count    int
		evidence []int // indexes into the case's events
	}
	cases := []struct {
		name string
		evs  func() []*event.Event
		want []want
	}{
		{"a hole", func() []*event.Event { return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 4)} }, []want{{1, []int{1, 2}}}},
		{"a late event fills it", func() []*event.Event { return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 4), mk(30, 3)} }, nil},
		{"unrecorded excuses it", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 5), mk(3, 6, checkpoint(3, 4))}
		}, nil},
		{"unrecorded excuses part", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 5), mk(3, 6, checkpoint(3))}
		}, []want{{1, []int{1, 2}}}},
		{"a fill in the middle splits the hole", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 5), mk(2, 3)}
		}, []want{{1, []int{0, 1}}, {1, []int{2, 1}}}},
		{"mid-stream start", func() []*event.Event { return []*event.Event{mk(0, 100), mk(1, 101)} }, nil},
		{"duplicates", func() []*event.Event { return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 2), mk(3, 1)} }, nil},
		{"one epoch across tenants", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 2, tenant("globex")), mk(2, 3, tenant("")), mk(3, 4)}
		}, nil},
		{"epochs are counted apart", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 2), mk(2, 1, epoch("ep2")), mk(3, 3)}
		}, nil},
		{"a hole filled after its grace", func() []*event.Event {
			return []*event.Event{mk(0, 1), mk(1, 3), mk(62, 2)}
		}, []want{{1, []int{0, 1}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := c.evs()
			e := NewEngine(rs, Options{})
			got := feed(e, evs...)
			got = append(got, e.Advance(t0.Add(2*time.Minute+time.Duration(len(evs))*time.Second))...)
			if len(got) != len(c.want) {
				t.Fatalf("%d alerts, want %d: %v", len(got), len(c.want), ids(got))
			}
			for i, w := range c.want {
				var wantIDs []string
				for _, j := range w.evidence {
					wantIDs = append(wantIDs, evs[j].ID)
				}
				if got[i].Alert.Count != w.count || !slices.Equal(got[i].Alert.Evidence, wantIDs) {
					t.Errorf("alert %d: count %d evidence %v, want %d %v", i, got[i].Alert.Count, got[i].Alert.Evidence, w.count, wantIDs)
				}
			}
		})
	}
	// The grace is measured on event time: an Advance before it ends
	// fires nothing.
	e := NewEngine(rs, Options{})
	feed(e, mk(0, 1), mk(1, 3))
	if got := e.Advance(t0.Add(61 * time.Second)); len(got) != 0 {
		t.Fatalf("fired at the end of the grace itself: %v", ids(got))
	}
	if got := e.Advance(t0.Add(62 * time.Second)); len(got) != 1 || !got[0].Time.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("after the grace: %v", got)
	}
}
