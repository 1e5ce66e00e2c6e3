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

// serverMessage reads one message an MCP backend streams to the client of
// x. A request (a method and an id: sampling, elicitation, roots, ping),
// read as strictly as a client's, is recorded, and remembered by session
// and id so the client's answer is known to be solicited. Streams off the
// MCP endpoints are not read: any HTTP backend could echo a client's
// input into them.
func (e *Enforcer) serverMessage(x *exchange, data []byte) {
	if x.ident == nil || !x.endpoint {
		return
	}
	m, err := mcp.Parse(data)
	if err != nil || m.Kind != mcp.KindRequest || string(m.ID) == "null" {
		return // a response, a notification, or no JSON-RPC a client would act on
	}
	e.serverRequests.Issue(binding.ServerRequest, serverRequestKey(x.mcpSession, m.ID), principalOf(x.ident), time.Now())
	boundRequest := *x.request
	req := &event.Request{Method: boundRequest.Method, Host: boundRequest.Host, Path: boundRequest.Path,
		RPCKind: string(mcp.KindRequest), RPCMethod: m.Method}
	boundRecord(req, nil)
	e.queueResponse(&event.Event{Kind: event.KindServerRequest, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace,
		Identity: x.identity(), Request: req})
}

// solicited reports whether the client's answer in x answers a request the
// backend sent this principal in this session, and consumes it.
func (e *Enforcer) solicited(x *exchange) bool {
	return e.serverRequests.Take(binding.ServerRequest, serverRequestKey(x.mcpSession, x.answerID), principalOf(x.ident), time.Now())
}

// serverRequestKey names a server request by MCP session and JSON-RPC id;
// the id's JSON form keeps 1 and "1" apart, as JSON-RPC does.
func serverRequestKey(session string, id json.RawMessage) string {
	return session + "\x00" + string(id)
}
