package detect

import (
	"container/heap"
	"slices"

	"github.com/rampart-io/rampart/schema/event"
)

// The correlations' state machines, one group at a time. "Within the
// window" is inclusive: events at most Window apart are within it.

// countState is event_count's. For gte it holds the latest events, at
// most the threshold, that are within the window of the newest; for lte
// the window's start, its count and its evidence.
type countState struct {
	refs  []ref // gte: ring of the latest events, oldest first; lte: evidence
	count int   // lte
	start int64 // lte
}

func (e *Engine) observeCount(s *ruleState, g *group, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	rule := s.r
	st, _ := g.st.(*countState)
	if st == nil {
		st = &countState{start: r.t}
		g.st = st
	}
	if rule.atMost {
		// The window starts at the group's first event and its deadline
		// is the group's expiry: lapse (advance) decides it.
		st.count++
		st.refs = e.addEvidence(st.refs, r)
		g.reqID, g.ident = ev.RequestID, ev.Identity
		return out
	}
	w := int64(rule.Window)
	st.refs = pruneBefore(st.refs, r.t-w)
	if len(st.refs) == rule.threshold {
		st.refs = append(st.refs[:0], st.refs[1:]...)
	}
	st.refs = append(st.refs, r)
	extend(g, r.t+w)
	if len(st.refs) < rule.threshold || r.t < g.muteUntil {
		return out
	}
	out = append(out, e.alert(s, g, ev, r.t, st.refs, len(st.refs)))
	g.muteUntil = st.refs[0].t + w
	st.refs = st.refs[:0]
	return out
}

// pruneBefore drops the refs, oldest first, older than since.
func pruneBefore(refs []ref, since int64) []ref {
	i := 0
	for i < len(refs) && refs[i].t < since {
		i++
	}
	if i == 0 {
		return refs
	}
	return append(refs[:0], refs[i:]...)
}

// valueState is value_count's: the distinct values within the window,
// in order of first appearance, at most the threshold of them.
type valueState struct {
	vals []valueSeen
}

type valueSeen struct {
	v     string
	first ref
	last  int64
	count int
}

func (e *Engine) observeValue(s *ruleState, g *group, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	rule := s.r
	v := boundedValue(rule.valueFn(e.act))
	if v == "" {
		return out // no value is not a distinct value
	}
	st, _ := g.st.(*valueState)
	if st == nil {
		st = &valueState{}
		g.st = st
	}
	w := int64(rule.Window)
	st.vals = slices.DeleteFunc(st.vals, func(x valueSeen) bool { return x.last < r.t-w })
	i := slices.IndexFunc(st.vals, func(x valueSeen) bool { return x.v == v })
	switch {
	case i >= 0:
		st.vals[i].last = max(st.vals[i].last, r.t)
		st.vals[i].count++
	default:
		if len(st.vals) == rule.threshold {
			// Muted and full: forget the value seen least recently.
			oldest := 0
			for j, x := range st.vals {
				if x.last < st.vals[oldest].last {
					oldest = j
				}
			}
			st.vals = slices.Delete(st.vals, oldest, oldest+1)
		}
		st.vals = append(st.vals, valueSeen{v: v, first: r, last: r.t, count: 1})
	}
	extend(g, r.t+w)
	if len(st.vals) < rule.threshold || r.t < g.muteUntil {
		return out
	}
	refs := make([]ref, 0, len(st.vals))
	count := 0
	for _, x := range st.vals {
		refs = append(refs, x.first)
		count += x.count
	}
	slices.SortFunc(refs, func(a, b ref) int { return cmpN(a.n, b.n) })
	out = append(out, e.alert(s, g, ev, r.t, refs, count))
	g.muteUntil = refs[0].t + w
	st.vals = st.vals[:0]
	return out
}

func cmpN(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stepsState is sequence's and all_of's. For a sequence, best[i] is the
// match of steps 0..i whose first event is the latest: of all partial
// matches it is the one most likely to finish within the window. For
// all_of, best[i] holds the latest event of step i alone.
type stepsState struct {
	best []*partial
}

type partial struct {
	start int64
	refs  []ref
}

func (e *Engine) observeSteps(s *ruleState, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	rule := s.r
	var hit [MaxSteps]bool
	any := false
	for i, st := range rule.steps {
		if e.eval(s, st.match) {
			hit[i], any = true, true
		}
	}
	if !any {
		return out
	}
	// A sequence starts only at its first step: a later step alone
	// creates no state.
	g := e.lookup(s, ev, rule.Correlation == AllOf || hit[0])
	if g == nil {
		return out
	}
	st, _ := g.st.(*stepsState)
	if st == nil {
		st = &stepsState{best: make([]*partial, len(rule.steps))}
		g.st = st
	}
	w := int64(rule.Window)
	for i, p := range st.best {
		if p != nil && p.start < r.t-w {
			st.best[i] = nil
		}
	}
	k := len(rule.steps)
	if rule.Correlation == Sequence {
		// From the last step down, so one event cannot fill two
		// consecutive steps.
		for i := k - 1; i >= 0; i-- {
			if !hit[i] {
				continue
			}
			var cand *partial
			switch {
			case i == 0:
				cand = &partial{start: r.t, refs: []ref{r}}
			case st.best[i-1] != nil:
				prev := st.best[i-1]
				cand = &partial{start: prev.start, refs: append(slices.Clip(prev.refs), r)}
			}
			if cand != nil && (st.best[i] == nil || cand.start >= st.best[i].start) {
				st.best[i] = cand
				extend(g, cand.start+w)
			}
		}
		done := st.best[k-1]
		if done == nil || r.t < g.muteUntil {
			return out
		}
		out = append(out, e.alert(s, g, ev, r.t, done.refs, len(done.refs)))
		g.muteUntil = done.start + w
		clear(st.best)
		return out
	}
	for i := range k {
		if hit[i] {
			st.best[i] = &partial{start: r.t, refs: []ref{r}}
		}
	}
	extend(g, r.t+w)
	refs := make([]ref, 0, k)
	for _, p := range st.best {
		if p == nil {
			return out
		}
		if !slices.ContainsFunc(refs, func(x ref) bool { return x.n == p.refs[0].n }) {
			refs = append(refs, p.refs[0])
		}
	}
	if r.t < g.muteUntil {
		return out
	}
	slices.SortFunc(refs, func(a, b ref) int { return cmpN(a.n, b.n) })
	out = append(out, e.alert(s, g, ev, r.t, refs, len(refs)))
	g.muteUntil = refs[0].t + w
	clear(st.best)
	return out
}

// observeNew fires on a group's first event: the group is the value, and
// its expiry, refreshed by every sighting, is one lookback after the
// last. A group that exists has seen the value within the lookback.
func (e *Engine) observeNew(s *ruleState, g *group, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	if g.st != nil {
		extend(g, r.t+int64(s.r.Window))
		return out
	}
	g.st = struct{}{}
	return append(out, e.alert(s, g, ev, r.t, []ref{r}, 1))
}

// observeNoPrior: a prior event opens (or extends) its group for one
// window; a match whose group is not open raises an alert at once, with
// itself as the evidence. A group value that is empty (a backend request
// without a request id) names no group any prior could have opened.
func (e *Engine) observeNoPrior(s *ruleState, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	if e.eval(s, s.r.expect) {
		if g := e.lookup(s, ev, true); g != nil {
			extend(g, r.t+int64(s.r.Window))
		}
	}
	if s.r.match != nil && !e.eval(s, s.r.match) {
		return out
	}
	if e.groupKey(s, ev) {
		if g, ok := s.groups[string(e.key)]; ok && r.t <= g.expiry {
			return out
		}
	}
	g := &group{tenant: groupTenant(s.r, ev)}
	key := appendKeyPart(nil, g.tenant)
	for _, fn := range s.r.groupFns {
		v := boundedValue(fn(e.act))
		g.values = append(g.values, v)
		key = appendKeyPart(key, v)
	}
	g.key = string(key)
	return append(out, e.alert(s, g, ev, r.t, []ref{r}, 1))
}

// absenceState is absence's: the starts still waiting for their expected
// event. The deadline, one window after the first or the rule's deadline
// of the first, is the group's expiry and does not move.
type absenceState struct {
	refs  []ref
	count int
}

func (e *Engine) observeAbsence(s *ruleState, g *group, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	st, _ := g.st.(*absenceState)
	if st == nil {
		st = &absenceState{}
		g.st = st
		g.reqID, g.ident = ev.RequestID, ev.Identity
		if s.r.deadline != nil {
			e.setDeadline(s, g, e.deadline(s, r.t))
		}
	}
	st.count++
	st.refs = e.addEvidence(st.refs, r)
	return out
}

// satisfy handles the expected event of an absence group: within the
// window it ends the wait; past it (the clock had not yet passed the
// deadline) the window lapsed first.
func (e *Engine) satisfy(s *ruleState, g *group, r ref, out []*event.Event) []*event.Event {
	if r.t > g.expiry {
		out = e.lapse(s, g, out)
	}
	e.drop(s, g)
	return out
}

// lapse is called when a group's windows have all lapsed, just before it
// is dropped: lte and absence decide here.
func (e *Engine) lapse(s *ruleState, g *group, out []*event.Event) []*event.Event {
	switch st := g.st.(type) {
	case *countState:
		if s.r.atMost && st.count <= s.r.threshold && len(st.refs) > 0 {
			out = append(out, e.lapseAlert(s, g, st.refs, st.count))
		}
	case *absenceState:
		if len(st.refs) > 0 {
			out = append(out, e.lapseAlert(s, g, st.refs, st.count))
		}
	case *gapState:
		for _, x := range st.ranges {
			out = append(out, e.gapAlert(s, g, x, x.deadline))
		}
	}
	return out
}

// addEvidence appends r, keeping the first and the latest MaxEvidence-1.
func (e *Engine) addEvidence(refs []ref, r ref) []ref {
	if len(refs) < e.opts.MaxEvidence {
		return append(refs, r)
	}
	copy(refs[1:], refs[2:])
	refs[len(refs)-1] = r
	return refs
}

// deadline is the rule's deadline of the current event, opened at t:
// within [t, t+Window]; the window when the expression fails, counted.
func (e *Engine) deadline(s *ruleState, t int64) int64 {
	w := int64(s.r.Window)
	d, err := s.r.deadline.eval(e.act)
	if err != nil {
		e.m.evalError(s)
		return t + w
	}
	return min(max(d, t), t+w)
}

// setDeadline moves a new group's expiry to d, in both heaps it may sit
// in.
func (e *Engine) setDeadline(s *ruleState, g *group, d int64) {
	g.expiry, g.hAt = d, d
	if g.hIdx >= 0 && g.hIdx < len(s.expiry) && s.expiry[g.hIdx] == g {
		heap.Fix(&s.expiry, g.hIdx)
	}
	if g.lIdx >= 0 && g.lIdx < len(s.late) && s.late[g.lIdx] == g {
		heap.Fix(&s.late, g.lIdx)
	}
}
