package detect

import (
	"container/heap"
	"slices"

	"github.com/rampart-io/rampart/schema/event"
)

// The gap correlation finds holes in the record as the stream passes:
// an enforcer instance numbers its events densely per epoch (Seq from 1),
// and the correlator sees every event, so a sequence number that has not
// arrived a grace after a later one did is missing. A late event (a
// redelivery, the spool draining) fills its hole; a checkpoint's
// unrecorded list excuses the numbers it names (the enforcer refused
// those requests, and says so in a signed statement). What remains when
// the grace ends is an alert: its evidence the events either side of the
// hole, its count the number of sequence numbers missing.
//
// The first event seen of an epoch sets where counting starts: the
// engine may start mid-stream, so numbers before it are not missing.

// maxGapRanges bounds the holes one group tracks; a new hole beyond it
// makes the oldest fire at once rather than be forgotten.
const maxGapRanges = 64

type gapState struct {
	next   uint64 // the sequence number expected next
	last   ref    // the latest event, in sequence order
	ranges []seqRange
}

// seqRange is one hole: lo..hi missing since the event before, revealed
// by the event after.
type seqRange struct {
	lo, hi        uint64
	before, after ref
	deadline      int64
}

func (e *Engine) observeGap(s *ruleState, g *group, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	st, _ := g.st.(*gapState)
	seq := ev.Seq
	extend(g, r.t+int64(s.r.Window))
	switch {
	case st == nil:
		g.st = &gapState{next: seq + 1, last: r}
		return out
	case seq == st.next:
		st.next++
		st.last = r
	case seq > st.next:
		if len(st.ranges) == maxGapRanges {
			out = append(out, e.gapAlert(s, g, st.ranges[0], r.t))
			st.ranges = st.ranges[1:]
		}
		st.ranges = append(st.ranges, seqRange{lo: st.next, hi: seq - 1, before: st.last, after: r, deadline: r.t + int64(s.r.grace)})
		st.next = seq + 1
		st.last = r
		e.wake(s, g)
	default:
		st.fill(seq, r) // late, or a duplicate
	}
	if ev.Checkpoint != nil {
		for _, u := range ev.Checkpoint.Unrecorded {
			st.fill(u, ref{})
		}
	}
	return out
}

// fill removes seq from the holes; r, when set, is the late event,
// which becomes the "before" of what remains above it.
func (st *gapState) fill(seq uint64, r ref) {
	i := slices.IndexFunc(st.ranges, func(x seqRange) bool { return x.lo <= seq && seq <= x.hi })
	if i < 0 {
		return
	}
	x := st.ranges[i]
	switch {
	case x.lo == x.hi:
		st.ranges = slices.Delete(st.ranges, i, i+1)
	case seq == x.lo:
		st.ranges[i].lo++
		if r.id != "" {
			st.ranges[i].before = r
		}
	case seq == x.hi:
		st.ranges[i].hi--
	case len(st.ranges) < maxGapRanges:
		upper := x
		upper.lo = seq + 1
		if r.id != "" {
			upper.before = r
		}
		st.ranges[i].hi = seq - 1
		st.ranges = slices.Insert(st.ranges, i+1, upper)
	}
	// At the bound a hole is not split: it keeps its one filled number
	// and may report it, rather than lose track of the others.
}

// wake puts the group in the expiry heap at its earliest due time: the
// first hole's deadline, or its expiry.
func (e *Engine) wake(s *ruleState, g *group) {
	at := g.expiry
	if st, ok := g.st.(*gapState); ok && len(st.ranges) > 0 {
		at = min(at, st.ranges[0].deadline)
	}
	if at != g.hAt && g.hIdx >= 0 && g.hIdx < len(s.expiry) && s.expiry[g.hIdx] == g {
		g.hAt = at
		heap.Fix(&s.expiry, g.hIdx)
	}
}

// gapDue fires the holes whose grace ended before now.
func (e *Engine) gapDue(s *ruleState, g *group, now int64, out []*event.Event) []*event.Event {
	st, ok := g.st.(*gapState)
	if !ok {
		return out
	}
	i := 0
	for i < len(st.ranges) && st.ranges[i].deadline < now {
		out = append(out, e.gapAlert(s, g, st.ranges[i], st.ranges[i].deadline))
		i++
	}
	st.ranges = st.ranges[i:]
	return out
}

func (e *Engine) gapAlert(s *ruleState, g *group, x seqRange, at int64) *event.Event {
	refs := []ref{x.before, x.after}
	if x.before.id == "" {
		refs = refs[1:]
	}
	return e.build(s, g, at, "", nil, refs, int(min(x.hi-x.lo+1, 1<<31)))
}
