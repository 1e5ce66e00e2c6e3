package enforcer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/event"
)

// taskGate refuses, before policy, a call under a task this instance
// knows ended, or one the caller may not act in, and keeps the task for
// policy (task.*) and the credential's deadline. What it cannot know yet
// — the task ended a moment ago at another instance — chargeTask finds
// in the shared record before anything is forwarded.
func (e *Enforcer) taskGate(x *exchange) (Code, error) {
	id := x.ident
	if id.TaskID == "" {
		return "", nil
	}
	rec, known := e.tasks.View(id.Tenant, id.TaskID)
	switch {
	case known && !rec.MayAct(id.Issuer, id.Subject):
		return CodeTaskForeign, fmt.Errorf("task %q is held by another principal", id.TaskID)
	case e.revocations.TaskEnded(id.Tenant, id.TaskID):
		return CodeTaskEnded, fmt.Errorf("task %q ended", id.TaskID)
	case known && rec.Ended != "":
		return CodeTaskEnded, fmt.Errorf("task %q ended: %s", id.TaskID, rec.Ended)
	}
	if known {
		x.task = &rec
	}
	return "", nil
}

// taskScope is what policy sees of a declared task; nil for any other.
func taskScope(r *task.Record) *policy.TaskScope {
	if r == nil || !r.Declared {
		return nil
	}
	return &policy.TaskScope{Purpose: r.Purpose, Tools: r.Tools, Destinations: r.Destinations, DataClasses: r.DataClasses,
		BudgetLeft: r.BudgetLeft(), Deadline: r.Deadline}
}

// chargeTask applies an allowed call to its task's shared record (budget,
// activity, the credential minted for it), refusing it when the record
// says the task ended, is another's or has no budget left.
func (e *Enforcer) chargeTask(ctx context.Context, x *exchange, minted *mint) (Code, error) {
	id := x.ident
	c := task.Call{Tenant: id.Tenant, ID: id.TaskID, Issuer: id.Issuer, Subject: id.Subject, ClientChosen: id.TaskSource == policy.SourceClient}
	if minted != nil && minted.fresh {
		t := minted.token
		c.Credential = &task.Credential{JTI: t.JTI, Audience: t.Audience, Scope: t.Scope, KeyID: t.KeyID, Expires: t.Expires.UTC()}
	}
	span := e.startSpan(ctx, "rampart.task")
	_, err := e.tasks.Charge(ctx, c)
	endSpan(span)
	return taskCode(err), err
}

// outageTolerated reports whether a call whose task record could not be
// reached may still go on: only when the operator chose availability
// (nats.on_unavailable: spool), the call carries no credential (those are
// governed by revocations.on_stale), and its task has no budget this
// instance knows of (a budget cannot be counted offline). An end this
// instance saw still refuses it (taskGate).
func (e *Enforcer) outageTolerated(x *exchange, minted *mint, err error) bool {
	return errors.Is(err, task.ErrUnavailable) && e.cfg.NATS.OnUnavailable == audit.Spool &&
		minted == nil && (x.task == nil || x.task.MaxCalls == 0)
}

// taskCode is the refusal of a task store error; "" for none.
func taskCode(err error) Code {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, task.ErrEnded):
		return CodeTaskEnded
	case errors.Is(err, task.ErrForeign):
		return CodeTaskForeign
	case errors.Is(err, task.ErrBudget):
		return CodeTaskBudgetExceeded
	case errors.Is(err, task.ErrExists):
		return CodeTaskExists
	case errors.Is(err, task.ErrUnknown):
		return CodeTaskUnknown
	case errors.Is(err, task.ErrFull):
		return CodeTaskTableFull
	case errors.Is(err, task.ErrCredentials):
		return CodeCredentialUnavailable
	case errors.Is(err, task.ErrInvalid):
		return CodeTaskInvalid
	}
	return CodeTaskUnavailable
}

// revokedEvents are the credential events recording that the task's
// credentials are revoked, one per credential minted under it. Each gets
// a fresh id when it is published, as every event does: an id derived
// from the jti would collapse a second emission in JetStream only when it
// opened its message (a message's Nats-Msg-Id is its first event's), and
// then with whatever else shared the message, leaving a gap in the
// emitting instance's chain. The task's record (EventsPending and its
// claim) is what keeps them to one emission.
func revokedEvents(r *task.Record) []*event.Event {
	evs := make([]*event.Event, 0, len(r.Credentials))
	for _, c := range r.Credentials {
		evs = append(evs, &event.Event{
			Kind: event.KindCredential, Tenant: r.Tenant, Time: r.EndedAt,
			Identity: &event.Identity{Issuer: r.Issuer, Subject: r.Subject, TaskID: r.ID},
			Credential: &event.Credential{Action: event.CredentialRevoked, JTI: c.JTI, Audience: c.Audience, Scope: c.Scope,
				KeyID: c.KeyID, Expires: c.Expires, Reason: r.Ended},
		})
	}
	return evs
}

// taskEnded records the revocation of the credentials of a task this
// instance ended at its deadline or idle (completions record theirs with
// the completion's decision), then confirms them in the task's record.
func (e *Enforcer) taskEnded(r task.Record) {
	e.log.Info("task ended", "tenant", r.Tenant, "task", r.ID, "reason", r.Ended, "credentials_revoked", len(r.Credentials))
	if len(r.Credentials) == 0 || e.crashBeforeRevokedEvents(r) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.audit.Publish(ctx, revokedEvents(&r)...); err != nil {
		// Still pending in the task's record: a sweep emits them again.
		e.log.Error("credential revocations not recorded yet", "tenant", r.Tenant, "task", r.ID, "err", err)
		return
	}
	e.confirmRevoked(ctx, &r)
}

// reemitRevoked records the revoked events of a task whose ender did not
// confirm them (it died, or NATS failed it) once their lease ran out; the
// task store confirms them when it returns nil.
func (e *Enforcer) reemitRevoked(ctx context.Context, r task.Record) error {
	evs := revokedEvents(&r)
	if err := e.audit.Publish(ctx, evs...); err != nil {
		return err
	}
	e.log.Warn("credential revocations recorded after their task's ender did not", "tenant", r.Tenant, "task", r.ID,
		"ended_by", r.EndedBy, "credentials_revoked", len(evs))
	return nil
}

// confirmRevoked empties the outbox of a task whose revoked events are
// recorded; failing, a sweep emits them again once the claim's lease
// runs out.
func (e *Enforcer) confirmRevoked(ctx context.Context, r *task.Record) {
	if !r.EventsPending {
		return
	}
	if err := e.tasks.ConfirmEvents(ctx, r.Tenant, r.ID); err != nil {
		e.log.Warn("credential revocations recorded, not yet confirmed", "tenant", r.Tenant, "task", r.ID, "err", err)
	}
}

// crashBeforeRevokedEvents reports whether a test's crash point stops
// this instance between a task's end and its revoked events.
func (e *Enforcer) crashBeforeRevokedEvents(r task.Record) bool {
	crash := e.crashPoint.Load()
	return crash != nil && (*crash)(r)
}
