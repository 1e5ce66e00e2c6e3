package enforcer

import (
	"encoding/json"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/event"
)

// exchange is the record of one request while it is handled.
type exchange struct {
	listCursor string // of a tools/list request, to pin its answer's page
	// rpcID is the JSON-RPC id of a request on an MCP endpoint, once
	// read: its refusals are answered as JSON-RPC errors for that id.
	rpcID json.RawMessage
	// answerID is the JSON-RPC id of a client's response: of the server
	// request it answers. mcpSession is the MCP session header sent.
	answerID   json.RawMessage
	mcpSession string
	endpoint   bool // the request is on an MCP endpoint (mcp.paths)
	id         string
	start      time.Time
	trace      event.Trace
	ident      *identity.Identity // nil until verified
	request    *event.Request
	// credential is what the destination asks to be minted for the call,
	// nil when it carries the caller's own credentials.
	credential *credential.Spec
	// task is the call's task as this instance last saw it, nil when it
	// has none or none is known yet (an undeclared task's first call).
	task *task.Record
}

func (x *exchange) tenant() string {
	if x.ident == nil {
		return ""
	}
	return x.ident.Tenant
}

func (x *exchange) identity() *event.Identity {
	if x.ident == nil {
		return nil
	}
	return &x.ident.Identity
}
