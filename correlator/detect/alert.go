package detect

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// alert builds the alert an event completes: at its time, naming its
// request and identity.
func (e *Engine) alert(s *ruleState, g *group, ev *event.Event, t int64, refs []ref, count int) *event.Event {
	return e.build(s, g, t, ev.RequestID, ev.Identity, refs, count)
}

// lapseAlert builds the alert of a window that lapsed (lte, absence): no
// event completes it, so its time is the deadline and its request and
// identity those of the group's first (absence) or last (lte) event.
func (e *Engine) lapseAlert(s *ruleState, g *group, refs []ref, count int) *event.Event {
	return e.build(s, g, g.expiry, g.reqID, g.ident, refs, count)
}

func (e *Engine) build(s *ruleState, g *group, t int64, reqID string, id *event.Identity, refs []ref, count int) *event.Event {
	r := s.r
	a := &event.Alert{
		RuleID: r.ID, Title: r.Title, Severity: r.Severity, Tags: slices.Clone(r.Tags),
		First: time.Unix(0, refs[0].t).UTC(), Last: time.Unix(0, refs[len(refs)-1].t).UTC(),
		Count: count, Evidence: evidence(refs, e.opts.MaxEvidence),
	}
	names := r.GroupBy
	if r.Correlation == NewValue {
		names = append(slices.Clip(names), r.valueName)
	}
	for i, v := range g.values {
		a.Group = append(a.Group, event.GroupValue{Field: names[i], Value: v})
	}
	for _, x := range refs {
		a.Last = maxTime(a.Last, time.Unix(0, x.t).UTC())
	}
	e.m.alerted(s)
	return &event.Event{
		V: event.Version, Kind: event.KindAlert, Tenant: g.tenant,
		ID:        alertID(r.ID, g.tenant, g.key, refs[0]),
		Time:      time.Unix(0, t).UTC(),
		RequestID: reqID, Identity: copyIdentity(id), Alert: a,
	}
}

// StateExhaustedRule is the rule id of the engine's own alerts: a rule
// evicted or refused a group at a bound (Options), so it may miss what
// the evicted state would have found. No rule may take this id.
const StateExhaustedRule = "detection-state-exhausted"

// ExhaustedMute is how long (event time) after an exhaustion alert the
// same rule, tenant and bound raise no other.
const ExhaustedMute = time.Hour

// exhaustedTags are the exhaustion alert's: evasion of the record's
// evaluation (MAESTRO L5) that cascades into missed detections (ASI08).
var exhaustedTags = []string{"maestro:L5", "owasp-agentic:ASI08"}

// exhaustedAlert is the alert of a bound reached by ev's new group: its
// group names the rule, the bound and, for a principal's, the principal;
// its evidence is ev.
func (e *Engine) exhaustedAlert(s *ruleState, ev *event.Event, tenant, principal, reason string) *event.Event {
	t := ev.Time.UnixNano()
	group := []event.GroupValue{{Field: "rule", Value: s.r.ID}, {Field: "reason", Value: reason}}
	key := appendKeyPart(appendKeyPart(appendKeyPart(nil, tenant), s.r.ID), reason)
	if reason == "principal_full" {
		group = append(group, event.GroupValue{Field: "principal", Value: boundedValue(principal)})
		key = appendKeyPart(key, principal)
	}
	first := ref{id: ev.ID, t: t, n: e.n}
	return &event.Event{
		V: event.Version, Kind: event.KindAlert, Tenant: tenant,
		ID:        alertID(StateExhaustedRule, tenant, string(key), first),
		Time:      ev.Time.UTC(),
		RequestID: ev.RequestID, Identity: copyIdentity(ev.Identity),
		Alert: &event.Alert{
			RuleID: StateExhaustedRule, Title: "Detection state exhausted: a rule evicts or refuses groups",
			Severity: event.SeverityHigh, Tags: slices.Clone(exhaustedTags), Group: group,
			First: ev.Time.UTC(), Last: ev.Time.UTC(), Count: 1, Evidence: []string{ev.ID},
		},
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// evidence lists the refs' ids, at most max: the first, then the latest.
func evidence(refs []ref, max int) []string {
	if len(refs) > max {
		refs = append(refs[:1:1], refs[len(refs)-max+1:]...)
	}
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.id
	}
	return ids
}

// alertID is the alert's event id: a ULID whose time is the first
// evidence event's and whose entropy is the first 10 bytes of sha256 over
// the rule id, the tenant, the group key and the first evidence event's
// id, each length-prefixed. The same finding made twice, from a
// redelivered event or a replay, has the same id, which the publisher's
// deduplication and the store's keys rely on.
func alertID(rule, tenant, key string, first ref) string {
	h := sha256.New()
	var n [8]byte
	for _, part := range []string{rule, tenant, key, first.id} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var entropy [10]byte
	copy(entropy[:], sum[:10])
	return event.DerivedID(time.Unix(0, first.t), entropy)
}

func copyIdentity(id *event.Identity) *event.Identity {
	if id == nil {
		return nil
	}
	c := *id
	c.Chain = slices.Clone(id.Chain)
	return &c
}
