package correlator

import (
	"slices"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// sessionKey identifies a session; ids are only unique within a tenant.
type sessionKey struct{ tenant, id string }

// Session is what the correlator knows of one agent session.
type Session struct {
	Tenant, ID          string
	FirstSeen, LastSeen time.Time
	Principal           string
	Agents              []string // distinct current actors, in order of appearance
	Chain               []string // the longest delegation chain seen, principal first
	Tasks               []string
	Requests, Allowed   uint64
	Denied, Responses   uint64
	LastStreamSeq       uint64 // events at or below it are already counted
}

// apply folds into s the events of one message that belong to it. It
// reports false for a message already counted (a redelivery), which leaves
// s unchanged; the events of one message share its stream sequence.
func (s *Session) apply(events []*event.Event, streamSeq uint64) bool {
	if streamSeq != 0 && streamSeq <= s.LastStreamSeq {
		return false
	}
	s.LastStreamSeq = max(s.LastStreamSeq, streamSeq)
	for _, e := range events {
		s.fold(e)
	}
	return true
}

// fold counts one event into s.
func (s *Session) fold(e *event.Event) {
	t := e.Time.UTC().Truncate(time.Second)
	if s.FirstSeen.IsZero() || t.Before(s.FirstSeen) {
		s.FirstSeen = t
	}
	if t.After(s.LastSeen) {
		s.LastSeen = t
	}
	if id := e.Identity; id != nil {
		if s.Principal == "" {
			s.Principal = id.Subject
		}
		if a := id.CurrentActor(); a != "" && !slices.Contains(s.Agents, a) {
			s.Agents = append(s.Agents, a)
		}
		if len(id.Chain)+1 > len(s.Chain) {
			chain := []string{id.Subject}
			for _, a := range id.Chain {
				chain = append(chain, a.Subject)
			}
			s.Chain = chain
		}
		if id.TaskID != "" && !slices.Contains(s.Tasks, id.TaskID) {
			s.Tasks = append(s.Tasks, id.TaskID)
		}
	}
	switch e.Kind {
	case event.KindRequest:
		s.Requests++
	case event.KindDecision:
		if e.Decision != nil && e.Decision.Effect == event.EffectAllow {
			s.Allowed++
		} else {
			s.Denied++
		}
	case event.KindResponse:
		s.Responses++
	}
}

// SessionColumns are the sessions_raw columns the correlator writes, in row order.
var SessionColumns = []string{
	"tenant", "session_id", "first_seen", "last_seen", "principal", "agents", "chain", "tasks",
	"requests", "allowed", "denied", "responses", "last_stream_seq", "version",
}

func (s *Session) row(version uint64) []any {
	return []any{
		s.Tenant, s.ID, s.FirstSeen, s.LastSeen, s.Principal, nonNil(s.Agents), nonNil(s.Chain), nonNil(s.Tasks),
		s.Requests, s.Allowed, s.Denied, s.Responses, s.LastStreamSeq, version,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
