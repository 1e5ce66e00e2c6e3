// Package mcp reads what an MCP request asks for — the JSON-RPC 2.0
// message kind and method, and per method the tool, resource or prompt
// with its raw arguments — which policy decides on and the audit event
// digests. It reads single messages, whatever the HTTP method, and refuses
// JSON-RPC batches (MCP removed them in 2025-06-18). It parses strictly: malformed JSON, repeated keys (even in
// another case), bodies nested too deep, data after the value, and JSON in
// any encoding but UTF-8 without a byte order mark are refused, so the
// enforcer never decides on a different reading of the body than the
// backend would make.
package mcp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Defaults of the limits on a request body.
const (
	// DefaultMaxBodyBytes bounds a request body when no limit is configured.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxDepth bounds how deeply arrays and objects nest in a body.
	DefaultMaxDepth = 64
)

// JSON-RPC 2.0 error codes (https://www.jsonrpc.org/specification#error_object).
// The enforcer never answers -32601 (method not found): which methods
// exist is the backend's business.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
	// CodeRefused, in the range JSON-RPC leaves to servers, answers a
	// request the enforcer refused (policy, budget, schema, session...):
	// the error's data says which refusal, by Rampart's code.
	CodeRefused = -32001
)

// Methods whose params the parser reads. Every other method is recorded by
// name only.
const (
	MethodInitialize    = "initialize"
	MethodToolsList     = "tools/list"     // params.cursor -> Call.Cursor
	MethodToolsCall     = "tools/call"     // params.name -> Call.Tool, params.arguments -> Call.Args
	MethodResourcesRead = "resources/read" // params.uri -> Call.Resource
	// MethodResourcesSubscribe and MethodResourcesUnsubscribe name their
	// resource in params.uri -> Call.Resource, as resources/read does.
	MethodResourcesSubscribe   = "resources/subscribe"
	MethodResourcesUnsubscribe = "resources/unsubscribe"
	// MethodCompletionComplete completes an argument of what params.ref
	// names: a prompt ("ref/prompt", name -> Call.Prompt) or a resource
	// template ("ref/resource", uri -> Call.Resource).
	MethodCompletionComplete = "completion/complete"
	MethodPromptsGet         = "prompts/get" // params.name -> Call.Prompt, params.arguments -> Call.Args
	// MethodA2AMessageSend is the Agent2Agent protocol's message/send,
	// which travels as JSON-RPC 2.0 too; it names no tool.
	MethodA2AMessageSend = "message/send"
)

// ErrTooLarge is returned by ReadBody when the body exceeds the limit.
var ErrTooLarge = errors.New("mcp: request body too large")

// Limits bound what the parser reads of a body. The zero value means the
// defaults.
type Limits struct {
	// MaxDepth is how deeply arrays and objects may nest, the outermost
	// counting as 1; deeper bodies are refused as invalid requests.
	// Default 64.
	MaxDepth int `yaml:"max_depth"`
}

// SetDefaults fills the unset fields of l.
func (l *Limits) SetDefaults() {
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultMaxDepth
	}
}

// Validate reports the first unusable limit.
func (l *Limits) Validate() error {
	switch {
	case l.MaxDepth < 0:
		return errors.New("mcp: max_depth must not be negative")
	case l.MaxDepth > maxScanDepth:
		return fmt.Errorf("mcp: max_depth must be at most %d", maxScanDepth)
	}
	return nil
}

// Kind is what a JSON-RPC message is: policy's rpc_kind.
type Kind string

// Message kinds. A body that is not JSON-RPC (plain HTTP) has kind "".
const (
	// KindRequest has a method and an id, and expects a response.
	KindRequest Kind = "request"
	// KindNotification has a method and no id.
	KindNotification Kind = "notification"
	// KindResponse has a result or an error and the id of the request it
	// answers: a client's answer to a server-initiated request, such as
	// sampling/createMessage or elicitation/create.
	KindResponse Kind = "response"
)

// Call is what an HTTP request asks of an MCP server. A body that is not
// JSON-RPC (plain HTTP) is a zero Call.
type Call struct {
	// Kind is the message's kind; "" for plain HTTP.
	Kind Kind
	// ID is the raw JSON-RPC id: nil when the member is absent, which
	// makes the request a notification; "null" when it is null.
	ID json.RawMessage
	// Method is the JSON-RPC method of a request or notification, e.g.
	// "tools/call"; "" for a response.
	Method string
	// Tool is params.name of a tools/call.
	Tool string
	// Resource is params.uri of a resources/read.
	Resource string
	// Prompt is params.name of a prompts/get.
	Prompt string
	// Cursor is params.cursor of a tools/list: a request for a later page,
	// whose answer is not the complete listing (toolschema.ObservePage).
	Cursor string
	// Args is params.arguments of a tools/call or prompts/get exactly as
	// received; nil when absent.
	Args json.RawMessage
	// ArgsDigest is "sha256:<hex>" of Args; empty when Args is nil.
	ArgsDigest string
}

// IsNotification reports whether c is a JSON-RPC notification: a request
// without an id, which the backend answers with no response.
func (c *Call) IsNotification() bool { return c.Kind == KindNotification }

// Error is a malformed JSON-RPC request, answered with Response.
type Error struct {
	Code    int             // JSON-RPC error code
	Message string          // short, safe to return to the client
	ID      json.RawMessage // id of the request when it could be read
}

func (e *Error) Error() string { return fmt.Sprintf("mcp: %s (%d)", e.Message, e.Code) }

// Response is the JSON-RPC error response body for e. data is attached as
// the error's "data" member when not nil.
func (e *Error) Response(data any) []byte {
	id := e.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    any    `json:"data,omitempty"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{e.Code, e.Message, data}})
	if err != nil { // data was not marshalable: drop it rather than fail
		return e.Response(nil)
	}
	return b
}

// ReadBody reads r up to limit bytes; a longer body is ErrTooLarge.
func ReadBody(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("mcp: read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, ErrTooLarge
	}
	return b, nil
}

// Parse reads the single message in a request body with the default
// limits. A body that some JSON decoder reads as an object or an array
// but that is not valid UTF-8 JSON, or a JSON-RPC message that breaks the
// spec, is an *Error; so is an object with a "method", "result" or "error"
// member but no "jsonrpc", which a backend that does not check the version
// runs as a message. Any other body is plain HTTP, a zero Call. A JSON-RPC
// batch (an array) is refused with CodeInvalidRequest: MCP removed
// batching in 2025-06-18, and a batch would need a decision per element
// for one forward.
//
// The body is read whatever the HTTP method it came with: backends that
// route on the body alone run a tools/call sent with PUT.
func Parse(body []byte) (Call, error) {
	return ParseLimited(body, Limits{})
}

// ParseLimited reads body as Parse does, within lim; zero fields of lim
// take their defaults. The Args of the Call alias body.
func ParseLimited(body []byte, lim Limits) (Call, error) {
	return parse(body, lim)
}

// NotMessage is the error for a body that Parse read as plain HTTP where
// a JSON-RPC message is required (a POST to an MCP endpoint): a parse
// error, or an invalid request when the body is JSON but not an object or
// array (or an object with no JSON-RPC member).
func NotMessage(body []byte) *Error {
	if json.Valid(body) {
		return &Error{Code: CodeInvalidRequest, Message: "the body is not a JSON-RPC message"}
	}
	return &Error{Code: CodeParseError, Message: "parse error: the body is not JSON"}
}

func parse(body []byte, lim Limits) (Call, error) {
	lim.SetDefaults()
	switch sniff(body) {
	case notJSON:
		// No JSON decoder reads a message here: plain HTTP, left to
		// policy on method and path.
		return Call{}, nil
	case bomJSON:
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: the body starts with a byte order mark; JSON-RPC bodies are UTF-8 without one"}
	case wideJSON:
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: the body is UTF-16 or UTF-32; JSON-RPC bodies are UTF-8"}
	}
	// encoding/json reads invalid UTF-8 as U+FFFD, other decoders refuse
	// it or read it as Latin-1: a name could be read three ways.
	if !utf8.Valid(body) {
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: the body is not valid UTF-8"}
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if err := scan(trimmed, lim.MaxDepth, false); err != nil {
		var se *scanError
		if errors.As(err, &se) && se.kind == errDepth {
			return Call{}, &Error{Code: CodeInvalidRequest, Message: "nesting depth exceeds the limit of " + strconv.Itoa(lim.MaxDepth)}
		}
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: " + err.Error()}
	}
	if trimmed[0] == '{' {
		return parseMessage(trimmed)
	}
	return Call{}, &Error{Code: CodeInvalidRequest, Message: "JSON-RPC batches are not accepted"}
}

// parseMessage reads one message object, which scan has accepted. An object
// with no JSON-RPC member at all is plain HTTP (a zero Call).
func parseMessage(obj []byte) (Call, error) {
	var buf [8]member
	top, err := uniqueMembers(obj, buf[:])
	if err != nil {
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: " + err.Error()}
	}
	if k, want, bad := misspelled(top, "jsonrpc", "id", "method", "params", "result", "error"); bad {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("member %q must be spelled %q", k, want)}
	}
	version, method := get(top, "jsonrpc"), get(top, "method")
	result, rpcErr := get(top, "result"), get(top, "error")
	if version == nil && method == nil && result == nil && rpcErr == nil {
		return Call{}, nil
	}
	var c Call
	if id := get(top, "id"); id != nil {
		if !validID(id) {
			return Call{}, &Error{Code: CodeInvalidRequest, Message: "id must be a string, number or null"}
		}
		c.ID = id
	}
	if v, ok := stringValue(version); !ok || v != "2.0" {
		// Without the version a message is still one to a backend that
		// never checks it: refused, not plain HTTP.
		return Call{}, &Error{Code: CodeInvalidRequest, Message: `jsonrpc must be "2.0"`, ID: c.ID}
	}
	if method == nil && (result != nil || rpcErr != nil) {
		return parseResponse(c, top, result, rpcErr)
	}
	if result != nil || rpcErr != nil {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "a request has no result or error", ID: c.ID}
	}
	c.Kind = KindRequest
	if c.ID == nil {
		c.Kind = KindNotification
	}
	var ok bool
	if c.Method, ok = stringValue(method); !ok || c.Method == "" {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "method must be a non-empty string", ID: c.ID}
	}
	params := get(top, "params")
	hasParams := params != nil
	if hasParams {
		if params[0] != '{' && params[0] != '[' {
			return Call{}, &Error{Code: CodeInvalidRequest, Message: "params must be an object or an array", ID: c.ID}
		}
		// Repeated keys anywhere in params are refused, not only where
		// the enforcer reads: policy sees the arguments through one
		// decoder, and a backend whose decoder keeps the other copy of
		// a key (or matches keys without regard to case, as Go structs
		// do) would act on a value policy never saw.
		if err := uniqueKeys(params); err != nil {
			return Call{}, &Error{Code: CodeInvalidParams, Message: "params" + err.Error(), ID: c.ID}
		}
	}
	if c.Method == MethodToolsList && hasParams && params[0] == '{' {
		var pbuf [4]member
		if cur := get(objectMembers(params, pbuf[:]), "cursor"); cur != nil {
			if c.Cursor, ok = stringValue(cur); !ok {
				return Call{}, &Error{Code: CodeInvalidParams, Message: "params.cursor must be a string", ID: c.ID}
			}
		}
		return c, nil
	}
	var field string
	var target *string
	switch c.Method {
	case MethodToolsCall:
		field, target = "name", &c.Tool
	case MethodPromptsGet:
		field, target = "name", &c.Prompt
	case MethodResourcesRead, MethodResourcesSubscribe, MethodResourcesUnsubscribe:
		field, target = "uri", &c.Resource
	case MethodCompletionComplete:
		return completionRef(c, params)
	default:
		return c, nil
	}
	if !hasParams {
		return Call{}, &Error{Code: CodeInvalidParams, Message: c.Method + " needs params", ID: c.ID}
	}
	if params[0] != '{' {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "params must be an object", ID: c.ID}
	}
	var pbuf [8]member
	pm := objectMembers(params, pbuf[:])
	if k, want, bad := misspelled(pm, field, "arguments"); bad {
		return Call{}, &Error{Code: CodeInvalidParams, Message: fmt.Sprintf("params member %q must be spelled %q", k, want), ID: c.ID}
	}
	if *target, ok = stringValue(get(pm, field)); !ok || *target == "" {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "params." + field + " must be a non-empty string", ID: c.ID}
	}
	if c.Resource != "" {
		return c, nil // a resource method: no arguments
	}
	if args := get(pm, "arguments"); args != nil {
		if args[0] != '{' && string(args) != "null" {
			return Call{}, &Error{Code: CodeInvalidParams, Message: "params.arguments must be an object", ID: c.ID}
		}
		c.Args = args
		c.ArgsDigest = Digest(args)
	}
	return c, nil
}

// completionRef reads what a completion/complete asks to complete: the
// prompt or resource template its params.ref names. A ref of another type
// names neither, and is left to policy on rpc_method alone.
func completionRef(c Call, params json.RawMessage) (Call, error) {
	bad := func(msg string) (Call, error) {
		return Call{}, &Error{Code: CodeInvalidParams, Message: msg, ID: c.ID}
	}
	if params == nil || params[0] != '{' {
		return bad("completion/complete needs params.ref")
	}
	var pbuf [8]member
	ref := get(objectMembers(params, pbuf[:]), "ref")
	if ref == nil || ref[0] != '{' {
		return bad("params.ref must be an object")
	}
	var rbuf [8]member
	rm := objectMembers(ref, rbuf[:])
	typ, ok := stringValue(get(rm, "type"))
	if !ok {
		return bad("params.ref.type must be a string")
	}
	var field string
	var target *string
	switch typ {
	case "ref/prompt":
		field, target = "name", &c.Prompt
	case "ref/resource":
		field, target = "uri", &c.Resource
	default:
		return c, nil
	}
	if *target, ok = stringValue(get(rm, field)); !ok || *target == "" {
		return bad("params.ref." + field + " must be a non-empty string")
	}
	return c, nil
}

// parseResponse reads a response: an answer to a request the server sent
// the client. It carries exactly one of result and error, the id of that
// request (null only in an error, when the request's id could not be
// read), and no params; an error is an object with an integer code and a
// string message.
func parseResponse(c Call, top []member, result, rpcErr json.RawMessage) (Call, error) {
	c.Kind = KindResponse
	switch {
	case result != nil && rpcErr != nil:
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "a response has a result or an error, not both", ID: c.ID}
	case c.ID == nil, result != nil && string(c.ID) == "null":
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "a response needs the id of the request it answers", ID: c.ID}
	case get(top, "params") != nil:
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "a response has no params", ID: c.ID}
	}
	// The enforcer reads neither, but the backend acts on them: they are
	// held to one reading as params are.
	if err := uniqueKeys(result); err != nil {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "result" + err.Error(), ID: c.ID}
	}
	if rpcErr == nil {
		return c, nil
	}
	if rpcErr[0] != '{' {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "error must be an object", ID: c.ID}
	}
	if err := uniqueKeys(rpcErr); err != nil {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "error" + err.Error(), ID: c.ID}
	}
	var buf [4]member
	em := objectMembers(rpcErr, buf[:])
	if k, want, bad := misspelled(em, "code", "message", "data"); bad {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("error member %q must be spelled %q", k, want), ID: c.ID}
	}
	if !isInteger(get(em, "code")) {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "error.code must be an integer", ID: c.ID}
	}
	if _, ok := stringValue(get(em, "message")); !ok {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "error.message must be a string", ID: c.ID}
	}
	return c, nil
}

// uniqueKeys refuses a value, which scan has accepted, with a key repeated
// in any of its objects; the error names where, as a JSON pointer.
func uniqueKeys(v json.RawMessage) error {
	if len(v) == 0 || (v[0] != '{' && v[0] != '[') {
		return nil
	}
	if err := scan(v, maxScanDepth, true); err != nil {
		var se *scanError
		errors.As(err, &se)
		return fmt.Errorf("%s: %s", se.pointer(), se.msg)
	}
	return nil
}

// isInteger reports whether raw is a JSON number without a fraction or an
// exponent.
func isInteger(raw json.RawMessage) bool {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return false
	}
	return !bytes.ContainsAny(raw, ".eE")
}

// maxScanDepth is the most MaxDepth may be: encoding/json, which decodes
// arguments for policy, refuses anything deeper. It also bounds rescans of
// values whose depth the body's limit has already bounded.
const maxScanDepth = 10000

// get returns the value of the member named key, nil when there is none.
func get(ms []member, key string) json.RawMessage {
	for _, m := range ms {
		if string(m.key) == key {
			return m.value
		}
	}
	return nil
}

// uniqueMembers splits obj, which scan has accepted, into its members and
// refuses keys that repeat, even in another case: encoding/json folds case
// and other parsers do not, and parsers disagree on which duplicate wins,
// so the enforcer must not read a different method or tool name than the
// backend.
func uniqueMembers(obj []byte, buf []member) ([]member, error) {
	ms := objectMembers(obj, buf)
	var folded map[string]bool // only for objects too big to compare pairwise
	if len(ms) > foldSetThreshold {
		folded = make(map[string]bool, len(ms))
	}
	for i, m := range ms {
		dup := false
		if folded != nil {
			f := fold(string(m.key))
			dup, folded[f] = folded[f], true
		} else {
			for _, prev := range ms[:i] {
				dup = dup || bytes.EqualFold(prev.key, m.key)
			}
		}
		if dup {
			return nil, fmt.Errorf("duplicate key %q", m.key)
		}
	}
	return ms, nil
}

// misspelled finds a member whose key equals one of names only when case
// is ignored. Decoders that match struct fields without regard to case,
// as encoding/json does, would read "Params" or "Arguments" as the real
// member while the enforcer, reading exactly, would not: a request the
// enforcer took for plain HTTP, or a call without arguments, could reach
// the backend as a tool call with arguments policy never saw.
func misspelled(ms []member, names ...string) (key, want string, bad bool) {
	for _, m := range ms {
		for _, n := range names {
			if string(m.key) != n && bytes.EqualFold(m.key, []byte(n)) {
				return string(m.key), n, true
			}
		}
	}
	return "", "", false
}

// stringValue decodes raw as a JSON string; ok is false for any other
// value, and for a missing one.
func stringValue(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		if string(raw) == `"2.0"` { // the jsonrpc member of every request
			return "2.0", true
		}
		return string(raw[1 : len(raw)-1]), true
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// Digest returns "sha256:<hex>" of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	var out [len("sha256:") + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[len("sha256:"):], sum[:])
	return string(out[:])
}

// Arguments decodes the arguments of c for policy; an empty map when there
// are none. Parse has already checked they are an object. Integers become
// int64 and other numbers float64, so that policy sees CEL ints where the
// caller sent integers.
func (c *Call) Arguments() (map[string]any, error) {
	m, err := c.JSONArguments()
	if err != nil {
		return nil, err
	}
	return ForPolicy(m), nil
}

// JSONArguments decodes the arguments of c with numbers as json.Number, the
// form JSON Schema validators take; an empty map when there are none.
// ForPolicy then turns them into what policy sees, so a call's arguments
// are decoded once for both.
func (c *Call) JSONArguments() (map[string]any, error) {
	if len(c.Args) == 0 {
		return map[string]any{}, nil
	}
	v, err := decodeValid(c.Args) // Parse scanned them strictly
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case map[string]any:
		return v, nil
	case nil: // "arguments": null
		return map[string]any{}, nil
	}
	return nil, fmt.Errorf("mcp: arguments: not an object")
}

// ForPolicy replaces, in place, the json.Number values of decoded
// arguments by int64 (integers) or float64, and returns them.
func ForPolicy(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = numbers(v)
	}
	return m
}

// numbers replaces json.Number values in v by int64 or float64.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64() // the decoder only makes valid numbers; huge ones become ±Inf
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	}
	return v
}

// validID reports whether raw is a JSON-RPC id: string, number or null.
func validID(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return bytes.Equal(raw, []byte("null"))
}
