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
// and id so the client's answer is known to be solicited. A message that
// is not JSON-RPC as the strict reading has it is a reason to cut the
// stream: a laxer client could act on what the record would miss. Streams
// off the MCP endpoints are not read: any HTTP backend could echo a
// client's input into them.
func (e *Enforcer) serverMessage(x *exchange, data []byte) (refuse string) {
	if x.ident == nil || !x.endpoint {
		return ""
	}
	m, err := mcp.Parse(data)
	switch {
	case err != nil:
		return "a message that is not JSON-RPC: " + err.Error()
	case m.Kind != mcp.KindRequest || string(m.ID) == "null":
		return "" // a response or a notification: nothing to answer
	}
	e.serverRequests.Issue(binding.ServerRequest, serverRequestKey(x.mcpSession, m.ID), principalOf(x.ident), time.Now())
	req := &event.Request{Method: x.request.Method, Host: x.request.Host, Path: x.request.Path,
		RPCKind: string(mcp.KindRequest), RPCMethod: m.Method}
	boundRecord(req, nil)
	e.queueResponse(&event.Event{Kind: event.KindServerRequest, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace,
		Identity: x.identity(), Request: req})
	return ""
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
