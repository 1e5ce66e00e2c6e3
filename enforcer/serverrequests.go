package enforcer

import (
	"encoding/json"
	"time"

	"github.com/rampart-io/rampart/enforcer/binding"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/schema/event"
)

// maxServerMessage bounds one message of an SSE answer the enforcer reads;
// past it the rest of that stream is passed on unread, and an answer to a
// request it carried is refused as unsolicited.
const maxServerMessage = 1 << 20

// serverMessage reads one message a backend streams to the client of x.
// A request (a method and an id: sampling, elicitation, roots, ping) is
// recorded, and remembered by session and id so the client's answer is
// known to be solicited.
func (e *Enforcer) serverMessage(x *exchange, data []byte) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
	}
	if x.ident == nil || json.Unmarshal(data, &m) != nil || m.Method == nil || len(m.ID) == 0 || string(m.ID) == "null" {
		return // a response or a notification: nothing to answer
	}
	e.bindings.Issue(binding.ServerRequest, serverRequestKey(x.mcpSession, m.ID), principalOf(x.ident), time.Now())
	boundRequest := *x.request
	req := &event.Request{Method: boundRequest.Method, Host: boundRequest.Host, Path: boundRequest.Path,
		RPCKind: string(mcp.KindRequest), RPCMethod: *m.Method}
	boundRecord(req, nil)
	e.queueResponse(&event.Event{Kind: event.KindServerRequest, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace,
		Identity: x.identity(), Request: req})
}

// solicited reports whether the client's answer in x answers a request the
// backend sent this principal in this session, and consumes it.
func (e *Enforcer) solicited(x *exchange) bool {
	return e.bindings.Take(binding.ServerRequest, serverRequestKey(x.mcpSession, x.answerID), principalOf(x.ident), time.Now())
}

// serverRequestKey names a server request by MCP session and JSON-RPC id;
// the id's JSON form keeps 1 and "1" apart, as JSON-RPC does.
func serverRequestKey(session string, id json.RawMessage) string {
	return session + "\x00" + string(id)
}
