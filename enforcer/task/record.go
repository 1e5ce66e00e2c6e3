package task

import (
	"slices"
	"time"
)

// Reasons a task ends, as recorded in revocations and credential events.
const (
	EndCompleted = "completed"
	EndDeadline  = "deadline"
	EndIdle      = "idle"
)

// Record is a task's shared state, the value of its key in RAMPART_TASKS.
type Record struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	// Declared is true of a task an orchestrator declared; false of one
	// its first call started.
	Declared bool `json:"declared"`
	// Issuer and Subject are the declarer, or the first caller of an
	// undeclared task.
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
	// Bound marks an undeclared task whose id a client chose: only its
	// first caller may call under it (ids from a token claim are the
	// token issuer's to hand out).
	Bound bool `json:"bound,omitempty"`
	// Subjects may call under a declared task besides the declarer.
	Subjects     []string `json:"subjects,omitempty"`
	Purpose      string   `json:"purpose,omitempty"`
	Tools        []string `json:"tools,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	DataClasses  []string `json:"data_classes,omitempty"`
	// MaxCalls is the call budget (0: none); Calls the allowed calls that
	// updated the record: all of them under a budget, otherwise those
	// that marked the task active (see Store.Charge).
	MaxCalls   int64     `json:"max_calls,omitempty"`
	Calls      int64     `json:"calls"`
	Started    time.Time `json:"started"`
	Deadline   time.Time `json:"deadline"`
	LastActive time.Time `json:"last_active"`
	// Credentials are those minted under the task, revoked when it ends.
	Credentials []Credential `json:"credentials,omitempty"`
	// Ended is why the task ended ("" while it lives), EndedAt when and
	// EndedBy which instance ended it.
	Ended   string    `json:"ended,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	EndedBy string    `json:"ended_by,omitempty"`
	// EventsPending marks an ended task whose credentials' revoked events
	// are not yet confirmed on the record: set with the end, cleared once
	// they are (Store.ConfirmEvents). It is the outbox that survives an
	// instance dying between the end and its events: any instance's sweep
	// emits them again once EventsClaimedAt is older than the lease.
	EventsPending bool `json:"events_pending,omitempty"`
	// EventsClaimedBy is the instance emitting the revoked events, since
	// EventsClaimedAt: the one that ended the task, or a sweep's.
	EventsClaimedBy string    `json:"events_claimed_by,omitempty"`
	EventsClaimedAt time.Time `json:"events_claimed_at,omitzero"`
}

// Credential is a token minted under a task.
type Credential struct {
	JTI      string    `json:"jti"`
	Audience string    `json:"audience"`
	Scope    []string  `json:"scope,omitempty"`
	KeyID    string    `json:"key_id,omitempty"`
	Expires  time.Time `json:"expires"`
}

// MayAct reports whether the principal may call under the task.
func (r *Record) MayAct(issuer, subject string) bool {
	switch {
	case r.Declared:
		return issuer == r.Issuer && (subject == r.Subject || slices.Contains(r.Subjects, subject))
	case r.Bound:
		return issuer == r.Issuer && subject == r.Subject
	}
	return true
}

// BudgetLeft is how many calls the budget still allows, -1 without one.
func (r *Record) BudgetLeft() int64 {
	if r.MaxCalls == 0 {
		return -1
	}
	return max(r.MaxCalls-r.Calls, 0)
}

// Expired reports why a live task is over at now: past its deadline or
// idle for longer than idle (0: never idle); "" when it is not.
func (r *Record) Expired(now time.Time, idle time.Duration) string {
	switch {
	case r.Ended != "":
		return ""
	case !r.Deadline.IsZero() && !now.Before(r.Deadline):
		return EndDeadline
	case idle > 0 && now.Sub(r.LastActive) >= idle:
		return EndIdle
	}
	return ""
}

// latestExpiry is when the last credential minted under r expires.
func (r *Record) latestExpiry() time.Time {
	var t time.Time
	for _, c := range r.Credentials {
		if c.Expires.After(t) {
			t = c.Expires
		}
	}
	return t
}
