package enforcer

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// refusal is a request refused before policy: its code, why (for the
// record), and the JSON-RPC error to answer with, when set.
type refusal struct {
	code   Code
	cause  error
	rpcErr *mcp.Error
}

// readCall is the body step of the decision path. It refuses what would
// let the backend read the request otherwise than policy does — a method
// that is not an upper-case token, a content coding, a charset other than
// UTF-8 — then reads and parses the body whatever the method, records in x
// what it asks, and on an MCP endpoint (mcp.paths) refuses anything but a
// well-formed MCP request. It returns the body to forward and the call's
// arguments for policy.
func (e *Enforcer) readCall(c *check, x *exchange) (body []byte, args map[string]any, r *refusal) {
	if err := canonicalMethod(c.method); err != nil {
		return nil, nil, &refusal{code: CodeMethodInvalid, cause: err}
	}
	endpoint := e.cfg.MCP.Match(c.path)
	x.endpoint = endpoint
	if endpoint && !mcp.EndpointMethod(c.method) {
		return nil, nil, &refusal{code: CodeMCPMethodNotAllowed, cause: fmt.Errorf("%s on an MCP endpoint", c.method)}
	}
	if err := mcp.CheckHeader(c.header); err != nil {
		code := CodeBodyCharsetUnsupported
		if errors.Is(err, mcp.ErrContentEncoding) {
			code = CodeBodyEncodingUnsupported
		}
		return nil, nil, &refusal{code: code, cause: err}
	}
	if c.body == nil {
		// The mode sees no body (an nginx auth_request): decided on
		// identity, method, host and path alone.
		return nil, nil, nil
	}
	body, err := mcp.ReadBody(c.body, e.cfg.MaxBodyBytes)
	switch {
	case errors.Is(err, mcp.ErrTooLarge):
		return nil, nil, &refusal{code: CodeBodyTooLarge, cause: err}
	case c.bodyTruncated:
		return nil, nil, &refusal{code: CodeBodyTooLarge, cause: errors.New("the gateway sent part of the body")}
	case err != nil:
		return nil, nil, &refusal{code: CodeBodyUnreadable, cause: err}
	}
	x.request.BodyBytes = int64(len(body))
	call, jsonArgs, r := parseCall(body, e.cfg.RPC)
	if r != nil {
		return nil, nil, r
	}
	req := x.request
	req.RPCKind, req.RPCMethod, req.ArgsDigest = string(call.Kind), call.Method, call.ArgsDigest
	req.Tool, req.Prompt, req.Resource = call.Tool, call.Prompt, call.Resource
	x.listCursor = call.Cursor
	if endpoint && call.Kind == mcp.KindRequest {
		x.rpcID = call.ID
	}
	if call.Kind == mcp.KindResponse {
		x.answerID = call.ID
	}
	if endpoint {
		switch {
		case c.method == http.MethodPost && call.Kind == "":
			rpcErr := mcp.NotMessage(body)
			return nil, nil, &refusal{code: rpcCode(rpcErr.Code), cause: rpcErr, rpcErr: rpcErr}
		case c.method != http.MethodPost && len(body) > 0:
			return nil, nil, &refusal{code: CodeMCPRequestInvalid, cause: fmt.Errorf("%s with a %d-byte body on an MCP endpoint", c.method, len(body))}
		}
	}
	if call.Method == mcp.MethodToolsCall {
		// Arguments that break the tool's pinned schema never reach policy.
		if err := e.schemas.ValidateDecoded(call.Tool, jsonArgs); err != nil {
			return nil, nil, &refusal{code: Code(toolschema.CodeOf(err)), cause: err}
		}
	}
	return body, mcp.ForPolicy(jsonArgs), nil
}

// parseCall parses body as one JSON-RPC message, or plain HTTP, and
// decodes its arguments.
func parseCall(body []byte, lim mcp.Limits) (mcp.Call, map[string]any, *refusal) {
	call, err := mcp.ParseLimited(body, lim)
	var args map[string]any
	if err == nil {
		args, err = call.JSONArguments()
	}
	if err != nil {
		rpcErr, ok := errors.AsType[*mcp.Error](err)
		if !ok {
			rpcErr = &mcp.Error{Code: mcp.CodeInvalidParams, Message: "invalid params", ID: call.ID}
		}
		return mcp.Call{}, nil, &refusal{code: rpcCode(rpcErr.Code), cause: err, rpcErr: rpcErr}
	}
	return call, args, nil
}

// canonicalMethod refuses a request method that is not a token of
// upper-case letters, digits and token punctuation. Methods are
// case-sensitive (RFC 9110 §9.1) and net/http passes "post" on as it came;
// a backend that folds case would run it as the POST that policy and the
// MCP endpoint checks did not see.
func canonicalMethod(m string) error {
	if m == "" {
		return errors.New("empty request method")
	}
	for i := range len(m) {
		if c := m[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return fmt.Errorf("request method %q is not an upper-case token", m)
		}
	}
	return nil
}
