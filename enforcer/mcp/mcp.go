// Package mcp reads the tool call out of an MCP request: the JSON-RPC 2.0
// method, the tool name and its raw arguments, which the policy decides on
// and the audit event digests. It parses strictly — duplicate keys and
// malformed JSON are refused — so the enforcer never decides on a different
// reading of the body than the backend would make.
package mcp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
)

// DefaultMaxBodyBytes bounds a request body when no limit is configured.
const DefaultMaxBodyBytes = 1 << 20

// JSON-RPC 2.0 error codes (https://www.jsonrpc.org/specification#error_object).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
)

// ErrTooLarge is returned by ReadBody when the body exceeds the limit.
var ErrTooLarge = errors.New("mcp: request body too large")

// Call is what an HTTP request asks of an MCP server. A request that is not
// JSON-RPC (not a POST, or no "jsonrpc" member) is a zero Call.
type Call struct {
	// RPC reports whether the body was a JSON-RPC request.
	RPC bool
	// ID is the raw JSON-RPC id, nil for a notification.
	ID json.RawMessage
	// Method is the JSON-RPC method, e.g. "tools/call".
	Method string
	// Tool is params.name of a tools/call.
	Tool string
	// Args is params.arguments exactly as received; nil when absent.
	Args json.RawMessage
	// ArgsDigest is "sha256:<hex>" of Args; empty when Args is nil.
	ArgsDigest string
}

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

// Parse reads the call in a request body. httpMethod is the HTTP method of
// the request; only POST bodies are read. A body that starts like JSON but
// is not valid, or a JSON-RPC request that breaks the spec, is an *Error.
func Parse(httpMethod string, body []byte) (Call, error) {
	if httpMethod != http.MethodPost {
		return Call{}, nil
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Call{}, nil
	}
	switch trimmed[0] {
	case '[':
		if !json.Valid(trimmed) {
			return Call{}, &Error{Code: CodeParseError, Message: "parse error"}
		}
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "batch requests are not supported"}
	case '{':
	default:
		// Not JSON at all: plain HTTP, left to policy on method and path.
		return Call{}, nil
	}
	top, err := members(trimmed)
	if err != nil {
		return Call{}, &Error{Code: CodeParseError, Message: "parse error: " + err.Error()}
	}
	version, ok := top["jsonrpc"]
	if !ok {
		return Call{}, nil
	}
	c := Call{RPC: true}
	if id, ok := top["id"]; ok {
		if !validID(id) {
			return Call{}, &Error{Code: CodeInvalidRequest, Message: "id must be a string, number or null"}
		}
		c.ID = id
	}
	var v string
	if json.Unmarshal(version, &v) != nil || v != "2.0" {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: `jsonrpc must be "2.0"`, ID: c.ID}
	}
	if json.Unmarshal(top["method"], &c.Method) != nil || c.Method == "" {
		return Call{}, &Error{Code: CodeInvalidRequest, Message: "method must be a non-empty string", ID: c.ID}
	}
	if c.Method != "tools/call" {
		return c, nil
	}
	params, ok := top["params"]
	if !ok {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "tools/call needs params", ID: c.ID}
	}
	if p := bytes.TrimLeft(params, " \t\r\n"); len(p) == 0 || p[0] != '{' {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "params must be an object", ID: c.ID}
	}
	pm, err := members(params)
	if err != nil {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "params: " + err.Error(), ID: c.ID}
	}
	if json.Unmarshal(pm["name"], &c.Tool) != nil || c.Tool == "" {
		return Call{}, &Error{Code: CodeInvalidParams, Message: "params.name must be a non-empty string", ID: c.ID}
	}
	if args, ok := pm["arguments"]; ok {
		if a := bytes.TrimLeft(args, " \t\r\n"); len(a) == 0 || (a[0] != '{' && !bytes.Equal(a, []byte("null"))) {
			return Call{}, &Error{Code: CodeInvalidParams, Message: "params.arguments must be an object", ID: c.ID}
		}
		c.Args = args
		c.ArgsDigest = Digest(args)
	}
	return c, nil
}

// Digest returns "sha256:<hex>" of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Arguments decodes the arguments of c for policy; an empty map when there
// are none. Parse has already checked they are an object. Integers become
// int64 and other numbers float64, so that policy sees CEL ints where the
// caller sent integers.
func (c *Call) Arguments() (map[string]any, error) {
	m := map[string]any{}
	if len(c.Args) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(c.Args))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("mcp: arguments: %w", err)
	}
	if m == nil { // "arguments": null
		m = map[string]any{}
	}
	for k, v := range m {
		m[k] = numbers(v)
	}
	return m, nil
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

// members splits one JSON object into its members, keeping each value raw.
// Keys match exactly, and keys that repeat — even in another case, since
// encoding/json folds case and other parsers do not — are an error: parsers
// disagree on which duplicate wins, and the enforcer must not read a
// different tool name than the backend.
func members(obj []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	out := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		f := fold(key)
		if seen[f] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[f] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		out[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return out, nil
}

// fold returns the case-folded form of s: every rune replaced by the
// smallest rune of its Unicode simple-folding orbit, so that two keys that
// strings.EqualFold calls equal (K and the Kelvin sign included) fold alike.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
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
