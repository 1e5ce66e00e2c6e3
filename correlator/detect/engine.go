package detect

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of Options.
const (
	DefaultMaxGroupsPerRule = 100_000
	// DefaultTenantShare is the part of MaxGroupsPerRule one tenant may
	// hold when MaxGroupsPerTenant is not set, and the part of that one
	// principal may hold when MaxGroupsPerPrincipal is not set.
	DefaultTenantShare = 10
	DefaultMaxEvidence = 64
)

// Options bound and instrument an Engine. Zero values take the defaults.
type Options struct {
	// MaxGroupsPerRule bounds the groups one rule tracks. Default
	// 100,000.
	MaxGroupsPerRule int
	// MaxGroupsPerTenant bounds the groups of one tenant in one rule, so
	// one tenant's flood of groups cannot take every slot: past its
	// share a tenant's least recently used group is evicted to make room
	// for its new one, never another tenant's. Default MaxGroupsPerRule /
	// 10.
	MaxGroupsPerTenant int
	// MaxGroupsPerPrincipal bounds the groups of one principal (the
	// event's subject; an enforcer instance for gap rules) within its
	// tenant's share, so one principal's flood evicts only its own least
	// recently used groups and cannot starve the tenant's other
	// principals. Default MaxGroupsPerTenant / 10.
	MaxGroupsPerPrincipal int
	// MaxEvidence bounds the event ids an alert lists: the first, then
	// the latest. Default 64, at least 2.
	MaxEvidence int
	// Meter receives the engine's metrics; none when nil.
	Meter metric.Meter
	// Log receives rate-limited warnings (an evicted or refused group);
	// slog's default when nil.
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxGroupsPerRule <= 0 {
		o.MaxGroupsPerRule = DefaultMaxGroupsPerRule
	}
	if o.MaxGroupsPerTenant <= 0 {
		o.MaxGroupsPerTenant = max(o.MaxGroupsPerRule/DefaultTenantShare, 1)
	}
	o.MaxGroupsPerTenant = min(o.MaxGroupsPerTenant, o.MaxGroupsPerRule)
	if o.MaxGroupsPerPrincipal <= 0 {
		o.MaxGroupsPerPrincipal = max(o.MaxGroupsPerTenant/DefaultTenantShare, 1)
	}
	o.MaxGroupsPerPrincipal = min(o.MaxGroupsPerPrincipal, o.MaxGroupsPerTenant)
	if o.MaxEvidence <= 0 {
		o.MaxEvidence = DefaultMaxEvidence
	}
	o.MaxEvidence = max(o.MaxEvidence, 2)
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Engine evaluates a rule set on a stream of events. It keeps, per rule,
// the state of each group (tenant and group_by values) on event time:
// windows are measured between event times, and the engine's clock is
// the latest event time observed or the latest Advance, whichever is
// later. The same ordered input (events and Advance calls) yields the
// same alerts with the same ids.
//
// When an alert fires, and when a group can fire again:
//   - The events that are an alert's evidence are consumed: no event is
//     evidence of two alerts of one rule.
//   - After an alert of event_count (gte), value_count, sequence or
//     all_of, the group is muted until one window after the alert's first
//     evidence event. Events in that time still update its state, but
//     nothing fires; the first event after the mute that leaves the
//     condition met fires the next alert. A condition that keeps holding
//     yields at most one alert per group per window.
//   - event_count (lte) and absence fire when their window lapses, at most
//     once per window; the group then ends, and its next matching event
//     starts a new window. A group fed by events behind the clock lapses
//     when an event after its deadline is observed (the stream has passed
//     it, as a replay of the same events sees), or at the latest when its
//     keep for late events ends.
//   - new_value fires once per new value of a group; it can fire again for
//     that value only after the value was unseen for a whole lookback.
//   - A group evicted at a bound (see Options), or refused, raises a
//     StateExhaustedRule alert for its rule, tenant and bound, at most
//     once per ExhaustedMute of event time: a rule blinded by a flood is
//     itself a finding.
//
// An Engine is not safe for concurrent use.
type Engine struct {
	opts  Options
	rules []*ruleState
	act   *activation
	clock int64  // unix ns
	n     uint64 // events observed: the stream order of evidence
	key   []byte // scratch for group keys
	m     *metrics
	// raised collects the alerts the current event raised while its
	// groups were looked up: exhaustion, and late windows that lapsed.
	raised []*event.Event
}

// ruleState is one rule's groups.
type ruleState struct {
	id      string // the rule's id, fixed: read by the metrics callback
	r       *Rule
	groups  map[string]*group
	tenants map[string]*tenantShare
	expiry  expiryHeap
	// late orders the groups fed late of a rule that fires on a lapse
	// (absence, lte) by deadline: the stream's own events lapse them
	// (lapseLate), while expiry holds them for their keep.
	late    lateHeap
	tracked atomic.Int64 // read by the metrics callback
	attrs   metric.MeasurementOption
	lastLog map[string]int64
	// spare holds emptied principal lists for reuse (share.go).
	spare []*lru
	// muted holds, per tenant and bound, until when (event time) its
	// next exhaustion raises no alert.
	muted map[string]int64
}

// group is the state of one group of one rule.
type group struct {
	key       string
	tenant    string
	principal string
	// links place the group in its tenant's and its principal's
	// recency lists (lruTenant, lruPrincipal).
	links  [2]link
	values []string // group_by values, in rule order (then the new_value field's)
	// expiry: once the clock passes it the group's windows have all
	// lapsed; hAt is the time it sits at in the heap (at most the later of
	// expiry and keep, re-sorted lazily when it is popped early).
	expiry, hAt int64
	// keep holds a group fed by late events (behind the clock: a spool
	// delivered after an outage, while the idle tick moved the clock on
	// the wall clock) until one window of the clock after the latest of
	// them, so the rest of the spool still finds it; its windows are
	// still judged on event time (see lookup). Zero for a group never fed
	// late.
	keep      int64
	hIdx      int
	lIdx      int // in the rule's late heap, when fed late
	muteUntil int64
	// The event a lapse-fired alert (lte, absence) names as its request.
	reqID string
	ident *event.Identity
	st    any // the correlation's state: *countState, *valueState, ...
}

// ref is one event as evidence.
type ref struct {
	id string
	t  int64
	n  uint64
}

// NewEngine returns an engine running rs. Its metrics callback stays
// registered until Close.
func NewEngine(rs *RuleSet, opts Options) *Engine {
	opts.setDefaults()
	e := &Engine{opts: opts, act: newActivation()}
	e.m = newMetrics(opts.Meter, e)
	e.install(rs, nil)
	return e
}

// Close unregisters the engine's metrics callback.
func (e *Engine) Close() { e.m.close() }

// Swap installs a new rule set. A rule whose id and definition are
// unchanged keeps its groups; a changed or new rule starts empty, and a
// removed rule's state is dropped.
func (e *Engine) Swap(rs *RuleSet) {
	old := make(map[string]*ruleState, len(e.rules))
	for _, s := range e.rules {
		old[s.r.ID] = s
	}
	e.install(rs, old)
}

func (e *Engine) install(rs *RuleSet, old map[string]*ruleState) {
	var states []*ruleState
	if rs != nil {
		for _, r := range rs.rules {
			if s, ok := old[r.ID]; ok && s.r.def == r.def {
				s.r = r
				states = append(states, s)
				continue
			}
			states = append(states, &ruleState{
				id: r.ID, r: r, groups: map[string]*group{}, tenants: map[string]*tenantShare{},
				attrs: e.m.ruleAttrs(r.ID), lastLog: map[string]int64{}, muted: map[string]int64{},
			})
		}
	}
	e.rules = states
	e.m.setRules(states)
}

// Observe feeds one event, in stream order, and returns the alerts it
// completes, as alert events ready to publish. The event's time first
// moves the clock, as Advance would: windows that lapsed before it fire
// first, so alerts do not depend on how often Advance is called. Rules
// see no inventory (inventory_loaded false): ObserveAgent gives one.
func (e *Engine) Observe(ev *event.Event) []*event.Event {
	return e.ObserveAgent(ev, ddl.Agent{})
}

// ObserveAgent is Observe with what the agent inventory says of the
// event's agent (the agent_* fields): the live correlator looks it up,
// a replay reads what the collector stored with the event, so the engine
// itself stays a function of its input.
func (e *Engine) ObserveAgent(ev *event.Event, agent ddl.Agent) []*event.Event {
	if ev == nil {
		return nil
	}
	t := ev.Time.UnixNano()
	out := e.advance(t, nil)
	out = e.lapseLate(t, out)
	e.n++
	e.act.reset(ev)
	e.act.agent = agent
	r := ref{id: ev.ID, t: t, n: e.n}
	for _, s := range e.rules {
		if s.r.kinds != 0 && s.r.kinds&e.act.kind == 0 {
			continue
		}
		if s.r.Tenant != "" && s.r.Tenant != ev.Tenant {
			continue
		}
		if ev.Alert != nil && ev.Alert.RuleID == s.r.ID {
			continue // a rule never feeds on its own alerts
		}
		out = e.observeRule(s, ev, r, out)
		if len(e.raised) > 0 {
			out = append(out, e.raised...)
			e.raised = e.raised[:0]
		}
	}
	e.act.reset(nil)
	return out
}

// Advance moves the clock to now: absence and lte windows that lapsed
// fire, and groups whose windows all lapsed are dropped. A clock never
// moves back.
func (e *Engine) Advance(now time.Time) []*event.Event {
	return e.advance(now.UnixNano(), nil)
}

func (e *Engine) advance(now int64, out []*event.Event) []*event.Event {
	if now <= e.clock {
		return out
	}
	e.clock = now
	for _, s := range e.rules {
		for len(s.expiry) > 0 && s.expiry[0].hAt < now {
			g := s.expiry[0]
			if g.expiry >= now {
				out = e.gapDue(s, g, now, out)
				g.hAt = max(g.expiry, g.keep)
				if st, ok := g.st.(*gapState); ok && len(st.ranges) > 0 {
					g.hAt = min(g.hAt, st.ranges[0].deadline)
				}
				heap.Fix(&s.expiry, 0)
				continue
			}
			if g.keep >= now {
				g.hAt = g.keep
				heap.Fix(&s.expiry, 0)
				continue
			}
			out = e.lapse(s, g, out)
			e.drop(s, g)
		}
	}
	return out
}

// observeRule runs one rule on the current event.
func (e *Engine) observeRule(s *ruleState, ev *event.Event, r ref, out []*event.Event) []*event.Event {
	rule := s.r
	if rule.Correlation == NoPrior {
		return e.observeNoPrior(s, ev, r, out)
	}
	if rule.match != nil && !e.eval(s, rule.match) {
		if rule.Correlation != Absence {
			return out
		}
		// absence: an event that is not a start may still be the
		// expected one.
		if rule.expect == nil || !e.eval(s, rule.expect) {
			return out
		}
		g := e.lookup(s, ev, false)
		if g != nil {
			out = e.satisfy(s, g, r, out)
		}
		return out
	}
	switch rule.Correlation {
	case Sequence, AllOf:
		return e.observeSteps(s, ev, r, out)
	case Absence:
		if rule.expect != nil && e.eval(s, rule.expect) {
			if g := e.lookup(s, ev, false); g != nil {
				out = e.satisfy(s, g, r, out)
			}
		}
		g := e.lookup(s, ev, true)
		if g == nil {
			return out
		}
		return e.observeAbsence(s, g, ev, r, out)
	}
	g := e.lookup(s, ev, true)
	if g == nil {
		return out
	}
	switch rule.Correlation {
	case EventCount:
		return e.observeCount(s, g, ev, r, out)
	case ValueCount:
		return e.observeValue(s, g, ev, r, out)
	case NewValue:
		return e.observeNew(s, g, ev, r, out)
	case Gap:
		return e.observeGap(s, g, ev, r, out)
	}
	return out
}

// eval runs one expression on the current event; an error is no match,
// counted.
func (e *Engine) eval(s *ruleState, x *expr) bool {
	ok, err := x.eval(e.act)
	if err != nil {
		e.m.evalError(s)
		return false
	}
	return ok
}

// groupKey writes the group's key into e.key: the tenant and each group
// value (and the new_value field's value), each length-prefixed (or, when
// long, digested: see appendKeyPart), so no two different tuples of
// values, whatever bytes they hold, share a key.
// It reports false when a group value is empty: an event without a
// session is in no session, and grouping all such events together
// would relate strangers.
func (e *Engine) groupKey(s *ruleState, ev *event.Event) bool {
	tenant := groupTenant(s.r, ev)
	b := appendKeyPart(e.key[:0], tenant)
	for _, fn := range s.r.groupFns {
		v := fn(e.act)
		if v == "" {
			e.key = b
			return false
		}
		b = appendKeyPart(b, v)
	}
	if s.r.Correlation == NewValue {
		v := s.r.valueFn(e.act)
		if v == "" {
			e.key = b
			return false
		}
		b = appendKeyPart(b, v)
	}
	e.key = b
	return true
}

// MaxValueBytes bounds what a group keeps of one value: a longer value
// (a client-chosen session id, a tool name) is kept, and shown in alerts,
// as "sha256:<hex>" of it, so a group costs the same whatever its
// values' length, and two values still never share a group.
const MaxValueBytes = 256

// appendKeyPart appends one value to a group key: a tag (0 the value
// itself, 1 its digest), its length and its bytes. The tag keeps a short
// value that reads "sha256:..." apart from the digest of a long one.
func appendKeyPart(b []byte, v string) []byte {
	if len(v) <= MaxValueBytes {
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	sum := sha256.Sum256([]byte(v))
	b = append(b, 1)
	return append(b, sum[:]...)
}

// boundedValue is v as a group keeps it (see MaxValueBytes).
func boundedValue(v string) string {
	if len(v) <= MaxValueBytes {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lookup returns the event's group, creating it when create is set and
// the bounds allow; nil when the event has no group or it is refused.
// A found group becomes its tenant's and principal's most recently used.
func (e *Engine) lookup(s *ruleState, ev *event.Event, create bool) *group {
	if !e.groupKey(s, ev) {
		return nil
	}
	t := ev.Time.UnixNano()
	if g, ok := s.groups[string(e.key)]; ok {
		if g.expiry >= t || s.r.Correlation == Gap {
			s.touch(g)
			e.late(s, g, t)
			return g
		}
		// Kept for late events, but its windows lapsed before this one:
		// it ends as it would have had the clock been this event's.
		e.raised = e.lapse(s, g, e.raised)
		e.drop(s, g)
	}
	if !create {
		return nil
	}
	tenant, principal := groupTenant(s.r, ev), groupPrincipal(s.r, ev)
	if !e.makeRoom(s, ev, tenant, principal) {
		return nil
	}
	g := &group{key: string(e.key), tenant: tenant, principal: principal, values: make([]string, 0, len(s.r.groupFns)+1)}
	for _, fn := range s.r.groupFns {
		g.values = append(g.values, boundedValue(fn(e.act)))
	}
	if s.r.Correlation == NewValue {
		g.values = append(g.values, boundedValue(s.r.valueFn(e.act)))
	}
	g.expiry = t + int64(s.r.Window)
	g.hAt = g.expiry
	s.groups[g.key] = g
	s.add(g)
	heap.Push(&s.expiry, g)
	s.tracked.Store(int64(len(s.groups)))
	e.late(s, g, t)
	return g
}

// late keeps g for one window of the clock when the event at t is behind
// the clock. Gap groups are an instance's own numbering, judged by their
// grace on the clock, and are not kept. A kept group that fires on a
// lapse also joins the rule's late heap, so it fires once the stream's
// events pass its deadline rather than when its keep ends.
func (e *Engine) late(s *ruleState, g *group, t int64) {
	if t >= e.clock || s.r.Correlation == Gap {
		return
	}
	if g.keep == 0 && firesOnLapse(s.r) {
		heap.Push(&s.late, g)
	}
	g.keep = max(g.keep, e.clock+int64(s.r.Window))
}

// firesOnLapse reports whether a rule's alerts come when a window ends
// without its event (absence, lte): their deadline never moves.
func firesOnLapse(r *Rule) bool {
	return r.Correlation == Absence || r.Correlation == EventCount && r.atMost
}

// lapseLate fires the groups fed late whose deadline the event at t is
// past. The clock, moved on by the idle tick, passed their deadline long
// ago; the stream's own event time is what a replay of the same events
// judges them by: an event after the deadline means the spool has
// delivered what it holds before it, and the expected event did not
// come.
func (e *Engine) lapseLate(t int64, out []*event.Event) []*event.Event {
	for _, s := range e.rules {
		for len(s.late) > 0 && s.late[0].expiry < t {
			g := s.late[0]
			out = e.lapse(s, g, out)
			e.drop(s, g)
		}
	}
	return out
}

// makeRoom frees a slot for a new group of tenant and principal: past the
// principal's bound it evicts that principal's least recently used group,
// past the tenant's the tenant's, and with the rule full the tenant's own
// when it holds any; another tenant's group is never evicted, so a rule
// full of other tenants' groups refuses it. Each eviction or refusal is
// counted, logged and raises an exhaustion alert. makeRoom reports
// whether the group may be created.
func (e *Engine) makeRoom(s *ruleState, ev *event.Event, tenant, principal string) bool {
	ts := s.tenants[tenant]
	var victim *group
	reason := ""
	switch {
	case ts.principal(principal).count() >= e.opts.MaxGroupsPerPrincipal:
		victim, reason = ts.principal(principal).head, "principal_full"
	case ts != nil && ts.lru.n >= e.opts.MaxGroupsPerTenant:
		victim, reason = ts.lru.head, "tenant_full"
	case len(s.groups) >= e.opts.MaxGroupsPerRule:
		reason = "rule_full"
		if ts != nil {
			victim = ts.lru.head
		}
	default:
		return true
	}
	e.exhaust(s, ev, tenant, principal, reason, victim != nil)
	if victim == nil {
		return false
	}
	e.drop(s, victim)
	return true
}

// groupPrincipal is whose share of its tenant's a new group counts
// against: the event's subject, or for gap, whose groups are an enforcer
// instance's epochs, that instance.
func groupPrincipal(r *Rule, ev *event.Event) string {
	if r.Correlation == Gap {
		return ev.Instance
	}
	if ev.Identity == nil {
		return ""
	}
	return ev.Identity.Subject
}

// groupTenant is the tenant part of an event's group: its own, except
// for gap, whose groups are an enforcer instance's epoch, numbered
// across all the tenants it serves; those groups, and their alerts,
// belong to no tenant.
func groupTenant(r *Rule, ev *event.Event) string {
	if r.Correlation == Gap {
		return ""
	}
	return ev.Tenant
}

// drop forgets a group.
func (e *Engine) drop(s *ruleState, g *group) {
	if g.hIdx >= 0 && g.hIdx < len(s.expiry) && s.expiry[g.hIdx] == g {
		heap.Remove(&s.expiry, g.hIdx)
	}
	if g.lIdx >= 0 && g.lIdx < len(s.late) && s.late[g.lIdx] == g {
		heap.Remove(&s.late, g.lIdx)
	}
	delete(s.groups, g.key)
	s.remove(g)
	s.tracked.Store(int64(len(s.groups)))
}

// exhaust counts a group evicted (or, when evicted is false, refused) at
// a bound, logs it at most once a minute of event time per rule and
// reason, and raises the exhaustion alert unless one of this tenant and
// bound was raised within ExhaustedMute.
func (e *Engine) exhaust(s *ruleState, ev *event.Event, tenant, principal, reason string, evicted bool) {
	if evicted {
		e.m.groupEvicted(s, reason)
	} else {
		e.m.groupDropped(s, reason)
	}
	t := ev.Time.UnixNano()
	if last, ok := s.lastLog[reason]; !ok || e.clock-last >= int64(time.Minute) {
		s.lastLog[reason] = e.clock
		msg := "detection group refused: bound reached and no group of this tenant to evict; the rule is blind to this tenant's new groups until some lapse"
		if evicted {
			msg = "detection group evicted: bound reached; the least recently used group of this tenant or principal gave way"
		}
		e.opts.Log.Warn(msg, "rule", s.r.ID, "tenant", tenant, "principal", principal, "reason", reason, "groups", len(s.groups),
			"max_groups_per_rule", e.opts.MaxGroupsPerRule, "max_groups_per_tenant", e.opts.MaxGroupsPerTenant,
			"max_groups_per_principal", e.opts.MaxGroupsPerPrincipal)
	}
	mk := string(appendKeyPart(appendKeyPart(nil, tenant), reason))
	if until, ok := s.muted[mk]; ok && t < until {
		return
	}
	if len(s.muted) >= maxMuted {
		for k, until := range s.muted {
			if until <= t {
				delete(s.muted, k)
			}
		}
		if len(s.muted) >= maxMuted {
			return // still counted and logged
		}
	}
	s.muted[mk] = t + int64(ExhaustedMute)
	e.raised = append(e.raised, e.exhaustedAlert(s, ev, tenant, principal, reason))
}

// maxMuted bounds a rule's exhaustion mutes: one per tenant and bound.
const maxMuted = 10_000

// extend pushes a group's expiry later; the heap is re-sorted lazily.
func extend(g *group, until int64) {
	g.expiry = max(g.expiry, until)
}

// expiryHeap orders groups by hAt, earliest first.
type expiryHeap []*group

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].hAt < h[j].hAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hIdx, h[j].hIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	g := x.(*group)
	g.hIdx = len(*h)
	*h = append(*h, g)
}
func (h *expiryHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	g.hIdx = -1
	*h = old[:len(old)-1]
	return g
}

// lateHeap orders a rule's late-fed groups by deadline (expiry, which
// never moves for the rules it holds), earliest first.
type lateHeap []*group

func (h lateHeap) Len() int           { return len(h) }
func (h lateHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h lateHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].lIdx, h[j].lIdx = i, j
}
func (h *lateHeap) Push(x any) {
	g := x.(*group)
	g.lIdx = len(*h)
	*h = append(*h, g)
}
func (h *lateHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	g.lIdx = -1
	*h = old[:len(old)-1]
	return g
}
