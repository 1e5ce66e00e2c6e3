package enforcer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/event"
)

// taskAPIPath is where orchestrators declare and complete tasks:
//
//	POST /_rampart/tasks                declare (a task.Declaration)
//	POST /_rampart/tasks/{id}/complete  complete
//
// Both are decided by policy like any call (method, path, and task.* of
// the task declared or completed) and recorded as request and decision.
const taskAPIPath = "/_rampart/tasks"

// maxCompletionBytes bounds a completion's body, which is empty or {}.
const maxCompletionBytes = 1024

// taskReply is the answer of the task API on success.
type taskReply struct {
	Task      taskView `json:"task"`
	RequestID string   `json:"request_id"`
}

type taskView struct {
	ID           string     `json:"id"`
	Purpose      string     `json:"purpose,omitempty"`
	Tools        []string   `json:"tools,omitempty"`
	Destinations []string   `json:"destinations,omitempty"`
	DataClasses  []string   `json:"data_classes,omitempty"`
	Subjects     []string   `json:"subjects,omitempty"`
	MaxCalls     int64      `json:"max_calls,omitempty"`
	Deadline     *time.Time `json:"deadline,omitempty"`
	Ended        string     `json:"ended,omitempty"`
	Revoked      *int       `json:"revoked_credentials,omitempty"`
}

func (e *Enforcer) serveTaskAPI(w http.ResponseWriter, r *http.Request) {
	c := &check{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header}
	x := e.newExchange(c)
	o, reply := e.taskCall(r.Context(), c, x, r.Body)
	e.metrics.observe(r.Context(), o.allow, o.code, x.start)
	w.Header().Set(HeaderRequestID, o.id)
	if !o.allow {
		o.code.setHeader(w.Header())
		writeReply(w, o.status, o.reply)
		return
	}
	b, _ := json.Marshal(reply)
	writeReply(w, o.status, b)
}

// taskCall identifies the caller, reads the operation, asks policy, and
// performs and records it. The store changes before the record: a
// declaration that cannot be recorded is withdrawn; a completion stays
// (ending a task early is the safe side), answered audit_unavailable.
func (e *Enforcer) taskCall(ctx context.Context, c *check, x *exchange, body io.Reader) (*outcome, *taskReply) {
	if code, err := e.admit(ctx, c, x); err != nil {
		return e.refuse(ctx, x, code, err, nil), nil
	}
	if c.method != http.MethodPost {
		return e.refuse(ctx, x, CodeTaskInvalid, fmt.Errorf("the task API takes POST, not %s", c.method), nil), nil
	}
	// Every field, not the first: "identity" then "gzip" is a gzip body
	// to whoever reads the last one.
	if enc := c.header.Values("Content-Encoding"); len(enc) > 1 || len(enc) == 1 && !strings.EqualFold(strings.TrimSpace(enc[0]), "identity") {
		return e.refuse(ctx, x, CodeBodyEncodingUnsupported, fmt.Errorf("content-encoding %q", enc), nil), nil
	}
	if c.path == taskAPIPath {
		return e.declareTask(ctx, x, body)
	}
	id, ok := strings.CutSuffix(strings.TrimPrefix(c.path, taskAPIPath+"/"), "/complete")
	if !ok || strings.Contains(id, "/") {
		return e.refuse(ctx, x, CodeNotFound, fmt.Errorf("no task API at %s", c.path), nil), nil
	}
	if err := task.ValidID(id); err != nil {
		return e.refuse(ctx, x, CodeTaskInvalid, err, nil), nil
	}
	return e.completeTask(ctx, x, id, body)
}

func (e *Enforcer) declareTask(ctx context.Context, x *exchange, body io.Reader) (*outcome, *taskReply) {
	decl, err := task.Decode(body)
	if err != nil {
		return e.refuse(ctx, x, CodeTaskInvalid, err, nil), nil
	}
	id := x.ident
	rec, err := decl.Record(id.Tenant, id.Issuer, id.Subject, time.Now(), e.tasks.Config().MaxTaskDuration)
	if err != nil {
		return e.refuse(ctx, x, CodeTaskInvalid, err, nil), nil
	}
	id.TaskID = rec.ID // the declaration is recorded in the task it declares
	d, refused := e.decideTaskCall(ctx, x, rec)
	if refused != nil {
		return refused, nil
	}
	if err := e.tasks.Declare(ctx, rec); err != nil {
		return e.refuse(ctx, x, taskCode(err), err, nil), nil
	}
	dec := d.Event()
	dec.Reason = fmt.Sprintf("task %s declared: %s", rec.ID, dec.Reason)
	if err := e.record(ctx, x, dec, d.Obligations.OnAuditUnavailable); err != nil {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if uerr := e.tasks.Undeclare(uctx, rec); uerr != nil {
			e.log.Error("unrecorded task declaration not withdrawn", "task", rec.ID, "err", uerr)
		}
		return e.unavailable(x, err), nil
	}
	dl := rec.Deadline
	return &outcome{id: x.id, allow: true, status: http.StatusCreated, x: x}, &taskReply{RequestID: x.id, Task: taskView{
		ID: rec.ID, Purpose: rec.Purpose, Tools: rec.Tools, Destinations: rec.Destinations, DataClasses: rec.DataClasses,
		Subjects: rec.Subjects, MaxCalls: rec.MaxCalls, Deadline: &dl}}
}

func (e *Enforcer) completeTask(ctx context.Context, x *exchange, taskID string, body io.Reader) (*outcome, *taskReply) {
	b, err := io.ReadAll(io.LimitReader(body, maxCompletionBytes+1))
	if t := bytes.TrimSpace(b); err != nil || len(b) > maxCompletionBytes || (len(t) > 0 && !bytes.Equal(t, []byte("{}"))) {
		return e.refuse(ctx, x, CodeTaskInvalid, errors.New("a completion's body is empty or {}"), nil), nil
	}
	id := x.ident
	id.TaskID = taskID
	rec, known := e.tasks.View(id.Tenant, taskID)
	var view *task.Record
	if known {
		view = &rec
	}
	d, refused := e.decideTaskCall(ctx, x, view)
	if refused != nil {
		return refused, nil
	}
	ended, err := e.tasks.End(ctx, id.Tenant, taskID, task.EndCompleted, func(r *task.Record) error {
		// Only the declarer (for an undeclared task, its first caller)
		// completes it; the task's other callers may not.
		if r.Issuer != id.Issuer || r.Subject != id.Subject {
			return task.ErrForeign
		}
		return nil
	})
	pending := errors.Is(err, task.ErrRevocationPending)
	if err != nil && !pending {
		return e.refuse(ctx, x, taskCode(err), err, nil), nil
	}
	dec := d.Event()
	dec.Reason = fmt.Sprintf("task %s completed, %d credentials revoked: %s", taskID, len(ended.Credentials), dec.Reason)
	if rerr := e.record(ctx, x, dec, d.Obligations.OnAuditUnavailable, revokedEvents(&ended)...); rerr != nil {
		return e.unavailable(x, rerr), nil
	}
	e.confirmRevoked(ctx, &ended)
	if pending { // ended, its revocation not yet written: the sweep will
		return e.refuse(ctx, x, CodeTaskUnavailable, err, nil), nil
	}
	n := len(ended.Credentials)
	return &outcome{id: x.id, allow: true, status: http.StatusOK, x: x},
		&taskReply{RequestID: x.id, Task: taskView{ID: taskID, Ended: ended.Ended, Revoked: &n}}
}

// decideTaskCall asks policy about a task API call, with task.* the task
// declared or completed, and records and returns the refusal of a deny.
func (e *Enforcer) decideTaskCall(ctx context.Context, x *exchange, rec *task.Record) (policy.Decision, *outcome) {
	in := e.input(x, nil)
	in.TaskScope = taskScope(rec)
	d := e.policy.Decide(ctx, in)
	if d.Effect == event.EffectAllow {
		return d, nil
	}
	if err := e.record(ctx, x, d.Event(), d.Obligations.OnAuditUnavailable); err != nil {
		return d, e.unavailable(x, err)
	}
	return d, &outcome{id: x.id, code: CodePolicyDenied, status: CodePolicyDenied.Status(), x: x,
		reply: refusalBody(x, CodePolicyDenied, d.Reason, d.RuleID, d.PolicyID)}
}
