package enforcer

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rampart-io/rampart/enforcer/toolschema"
	"github.com/rampart-io/rampart/schema/event"
)

// observeListing pins the tool schemas of a tools/list answer, JSON or an
// SSE stream of JSON-RPC messages, and records every change it brings: a
// changed schema is itself a decision input.
func (e *Enforcer) observeListing(x *exchange, rec *recorder) {
	if rec.status != http.StatusOK {
		return
	}
	answers := [][]byte{rec.kept}
	if isEventStream(rec.Header()) {
		answers = sseData(rec.kept)
	}
	var changes []toolschema.Change
	for _, a := range answers {
		c, err := e.schemas.ObservePage(a, x.listCursor)
		if err != nil {
			e.log.Warn("tools/list answer not understood", "request_id", x.id, "err", err)
			return
		}
		changes = append(changes, c...)
	}
	events := make([]*event.Event, 0, len(changes))
	for _, c := range changes {
		effect := event.EffectAllow
		if c.Pinned != c.NewHash {
			effect = event.EffectDeny // the new schema waits for an operator
		}
		reason := fmt.Sprintf("%s: %s -> %s, pinned %s (%s)", c.Kind, c.OldHash, c.NewHash, c.Pinned, c.Origin)
		if c.Invalid != "" {
			reason += "; invalid: " + c.Invalid
		}
		events = append(events, &event.Event{
			Kind: event.KindToolSchema, Tenant: x.tenant(), RequestID: x.id, Identity: x.identity(),
			Request:  &event.Request{Method: x.request.Method, Host: x.request.Host, Path: x.request.Path, RPCMethod: x.request.RPCMethod, Tool: c.Tool},
			Decision: &event.Decision{Effect: effect, Code: "schema_" + string(c.Kind), Reason: reason},
		})
	}
	if len(events) == 0 {
		return
	}
	if err := e.audit.Publish(context.Background(), events...); err != nil {
		e.log.Error("tool schema changes not recorded", "request_id", x.id, "err", err)
	}
}
