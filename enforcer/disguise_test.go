package enforcer_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// denyListPolicy refuses the shell tool and allows everything else: the
// policy a deny-list deployment writes, which only holds if every request
// a backend runs as a tools/call of shell shows policy tool == "shell".
const denyListPolicy = `id: deny-list
rules:
  - id: deny-shell
    match: 'tool == "shell"'
    effect: deny
    reason: "no shell for agents"
  - id: allow-rest
    match: 'true'
    effect: allow
`

// withPolicy makes the harness decide with policy instead of testPolicy.
func withPolicy(policy string) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		p := filepath.Join(h.dir, "override.yaml")
		if err := os.WriteFile(p, []byte(policy), 0o600); err != nil {
			panic(err)
		}
		c.PolicyFile = p
	}
}

// rawHTTP is one request as written on the wire: any method, header
// fields exactly as given (repeats kept) and the body with its length.
func rawHTTP(method, path, token string, body []byte, fields ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + token + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.String()
}

// refusalCode is the API code of a refusal, from an API error body or
// from the data of a JSON-RPC error answer.
func refusalCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	if c, ok := e["code"].(string); ok {
		return c
	}
	d, _ := e["data"].(map[string]any)
	c, _ := d["code"].(string)
	return c
}

func utf16Body(s string, bigEndian, bom bool) []byte {
	units := utf16.Encode([]rune(s))
	if bom {
		units = append([]uint16{0xfeff}, units...)
	}
	out := make([]byte, 2*len(units))
	for i, u := range units {
		if bigEndian {
			binary.BigEndian.PutUint16(out[2*i:], u)
		} else {
			binary.LittleEndian.PutUint16(out[2*i:], u)
		}
	}
	return out
}

func utf32LEBody(s string) []byte {
	var out []byte
	for _, r := range "\ufeff" + s {
		out = binary.LittleEndian.AppendUint32(out, uint32(r))
	}
	return out
}

func compressed(enc, s string) string {
	var b bytes.Buffer
	switch enc {
	case "gzip":
		w := gzip.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
	case "deflate": // HTTP's deflate is the zlib format
		w := zlib.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
	case "raw-deflate":
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
	case "br":
		// One uncompressed meta-block (RFC 7932 §9.2): WBITS 16 (bit 0),
		// ISLAST 0, MNIBBLES 4, MLEN-1 in 16 bits, ISUNCOMPRESSED 1; then
		// the bytes, then a last, empty meta-block.
		n := uint32(len(s) - 1)
		head := n<<4 | 1<<20
		b.Write([]byte{byte(head), byte(head >> 8), byte(head >> 16)})
		b.WriteString(s)
		b.WriteByte(0x03)
	}
	return b.String()
}

// TestDisguisedToolCallsNeverPass sends a tools/call of shell in every
// shape a JSON backend still runs as one, against a deny-list policy: each
// must be refused before policy or denied by it, never forwarded.
func TestDisguisedToolCallsNeverPass(t *testing.T) {
	h := newHarness(t, 2*time.Second, withPolicy(denyListPolicy))
	tok := h.token(t)
	shell := toolCall("shell", `{"cmd":"id"}`)
	noVersion := `{"id":1,"method":"tools/call","params":{"name":"shell","arguments":{"cmd":"id"}}}`
	batch := "[" + shell + "]"
	json := "Content-Type: application/json"
	tests := []struct {
		name     string
		raw      string
		wantCode string // the refusal's API code
	}{
		{"no jsonrpc member", rawHTTP("POST", "/mcp", tok, []byte(noVersion), json), "rpc_invalid_request"},
		{"no jsonrpc member, result", rawHTTP("POST", "/mcp", tok, []byte(`{"id":1,"result":{}}`), json), "rpc_invalid_request"},
		{"PUT", rawHTTP("PUT", "/mcp", tok, []byte(shell), json), "mcp_method_not_allowed"},
		{"PATCH", rawHTTP("PATCH", "/mcp", tok, []byte(shell), json), "mcp_method_not_allowed"},
		{"GET with a body", rawHTTP("GET", "/mcp", tok, []byte(shell), json), "mcp_request_invalid"},
		{"DELETE with a body", rawHTTP("DELETE", "/mcp", tok, []byte(shell), json), "mcp_request_invalid"},
		{"OPTIONS with a body", rawHTTP("OPTIONS", "/mcp", tok, []byte(shell), json), "mcp_method_not_allowed"},
		{"PUT without jsonrpc", rawHTTP("PUT", "/mcp", tok, []byte(noVersion), json), "mcp_method_not_allowed"},
		{"lower-case post", rawHTTP("post", "/mcp", tok, []byte(shell), json), "method_invalid"},
		{"mixed-case Post", rawHTTP("Post", "/mcp", tok, []byte(shell), json), "method_invalid"},
		{"UTF-8 BOM", rawHTTP("POST", "/mcp", tok, append([]byte("\xef\xbb\xbf"), shell...), json), "rpc_parse_error"},
		{"UTF-16LE with BOM", rawHTTP("POST", "/mcp", tok, utf16Body(shell, false, true), json), "rpc_parse_error"},
		{"UTF-16LE", rawHTTP("POST", "/mcp", tok, utf16Body(shell, false, false), json), "rpc_parse_error"},
		{"UTF-16BE with BOM", rawHTTP("POST", "/mcp", tok, utf16Body(shell, true, true), json), "rpc_parse_error"},
		{"UTF-16BE", rawHTTP("POST", "/mcp", tok, utf16Body(shell, true, false), json), "rpc_parse_error"},
		{"UTF-16LE with BOM, charset", rawHTTP("POST", "/mcp", tok, utf16Body(shell, false, true), json+"; charset=utf-16"), "body_charset_unsupported"},
		{"UTF-16LE, charset", rawHTTP("POST", "/mcp", tok, utf16Body(shell, false, false), json+"; charset=utf-16le"), "body_charset_unsupported"},
		{"UTF-16BE with BOM, charset", rawHTTP("POST", "/mcp", tok, utf16Body(shell, true, true), json+"; charset=UTF-16"), "body_charset_unsupported"},
		{"UTF-16BE, charset", rawHTTP("POST", "/mcp", tok, utf16Body(shell, true, false), json+`; charset="utf-16be"`), "body_charset_unsupported"},
		{"UTF-32LE with BOM", rawHTTP("POST", "/mcp", tok, utf32LEBody(shell), json), "rpc_parse_error"},
		{"gzip", rawHTTP("POST", "/mcp", tok, []byte(compressed("gzip", shell)), json, "Content-Encoding: gzip"), "body_encoding_unsupported"},
		{"deflate", rawHTTP("POST", "/mcp", tok, []byte(compressed("deflate", shell)), json, "Content-Encoding: deflate"), "body_encoding_unsupported"},
		{"raw deflate", rawHTTP("POST", "/mcp", tok, []byte(compressed("raw-deflate", shell)), json, "Content-Encoding: deflate"), "body_encoding_unsupported"},
		{"br", rawHTTP("POST", "/mcp", tok, []byte(compressed("br", shell)), json, "Content-Encoding: br"), "body_encoding_unsupported"},
		{"identity, gzip", rawHTTP("POST", "/mcp", tok, []byte(compressed("gzip", shell)), json, "Content-Encoding: identity, gzip"), "body_encoding_unsupported"},
		{"GZIP", rawHTTP("POST", "/mcp", tok, []byte(compressed("gzip", shell)), json, "Content-Encoding: GZIP"), "body_encoding_unsupported"},
		{"repeated Content-Encoding", rawHTTP("POST", "/mcp", tok, []byte(compressed("gzip", shell)), json, "Content-Encoding: identity", "Content-Encoding: gzip"), "body_encoding_unsupported"},
		{"x-gzip", rawHTTP("POST", "/mcp", tok, []byte(compressed("gzip", shell)), json, "Content-Encoding: x-gzip"), "body_encoding_unsupported"},
		// A latin-1 NBSP is white space to lenient decoders (.NET's
		// char.IsWhiteSpace) once the body is read as latin-1.
		{"charset latin1", rawHTTP("POST", "/mcp", tok, append([]byte("\xa0"), shell...), json+"; charset=latin1"), "body_charset_unsupported"},
		{"charset utf-7", rawHTTP("POST", "/mcp", tok, []byte("+AHs-"+shell[1:]), json+"; charset=utf-7"), "body_charset_unsupported"},
		{"two Content-Types", rawHTTP("POST", "/mcp", tok, append([]byte("\xa0"), shell...), json, "Content-Type: text/plain; charset=latin1"), "body_charset_unsupported"},
		{"leading form feed", rawHTTP("POST", "/mcp", tok, []byte("\f"+shell), json), "rpc_parse_error"},
		{"leading vertical tab", rawHTTP("POST", "/mcp", tok, []byte("\v"+shell), json), "rpc_parse_error"},
		{"leading NUL", rawHTTP("POST", "/mcp", tok, []byte("\x00"+shell), json), "rpc_parse_error"},
		{"leading file separator", rawHTTP("POST", "/mcp", tok, []byte("\x1c"+shell), json), "rpc_parse_error"},
		{"leading NBSP", rawHTTP("POST", "/mcp", tok, []byte("\u00a0"+shell), json), "rpc_parse_error"},
		{"leading line separator", rawHTTP("POST", "/mcp", tok, []byte("\u2028"+shell), json), "rpc_parse_error"},
		{"leading ideographic space", rawHTTP("POST", "/mcp", tok, []byte("\u3000"+shell), json), "rpc_parse_error"},
		{"leading block comment", rawHTTP("POST", "/mcp", tok, []byte("/* x */"+shell), json), "rpc_parse_error"},
		{"leading line comment", rawHTTP("POST", "/mcp", tok, []byte("// x\n"+shell), json), "rpc_parse_error"},
		{"invalid UTF-8", rawHTTP("POST", "/mcp", tok, []byte(strings.Replace(shell, `"id"`, "\"id\xff\"", 1)), json), "rpc_parse_error"},
		{"batch over PUT", rawHTTP("PUT", "/mcp", tok, []byte(batch), json), "mcp_method_not_allowed"},
		{"batch behind a BOM", rawHTTP("POST", "/mcp", tok, append([]byte("\xef\xbb\xbf"), batch...), json), "rpc_parse_error"},
		{"batch in UTF-16", rawHTTP("POST", "/mcp", tok, utf16Body(batch, false, false), json), "rpc_parse_error"},
		// Already refused before this test was written; kept so they stay so.
		{"control: plain", rawHTTP("POST", "/mcp", tok, []byte(shell), json), "policy_denied"},
		{"control: JSON white space", rawHTTP("POST", "/mcp", tok, []byte(" \t\r\n"+shell+"\n"), json), "policy_denied"},
		{"control: Method", rawHTTP("POST", "/mcp", tok, []byte(strings.Replace(shell, `"method"`, `"Method"`, 1)), json), "rpc_invalid_request"},
		{"control: METHOD without jsonrpc", rawHTTP("POST", "/mcp", tok, []byte(strings.Replace(noVersion, `"method"`, `"METHOD"`, 1)), json), "rpc_invalid_request"},
		{"control: batch", rawHTTP("POST", "/mcp", tok, []byte(batch), json), "rpc_invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			resp, body, _ := h.rawRequest(t, tt.raw)
			if h.hits.Load() != before {
				h.mu.Lock()
				got := h.lastBody
				h.mu.Unlock()
				t.Fatalf("forwarded (status %d): the backend received %q", resp.StatusCode, got)
			}
			if code := refusalCode(body); resp.StatusCode < 400 || code != tt.wantCode {
				t.Fatalf("status %d code %q, want %q: %v", resp.StatusCode, code, tt.wantCode, body)
			}
		})
	}
}

// TestPromptIsNotATool: a rule on tool never matches a prompts/get, whose
// prompt has a variable of its own.
func TestPromptIsNotATool(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	get := `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"search","arguments":{}}}`
	r := h.post(t, get, auth)
	if r.status != http.StatusForbidden || errorCode(r) != "policy_denied" || h.hits.Load() != 0 {
		t.Fatalf("prompts/get of search: status %d, backend hits %d: %v", r.status, h.hits.Load(), r.body)
	}
	dec := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if dec.Decision.RuleID != "default-deny" || dec.Request.Tool != "" || dec.Request.Prompt != "search" || dec.Request.RPCKind != "request" {
		t.Errorf("decision %+v, request %+v", dec.Decision, dec.Request)
	}

	h = newHarness(t, 2*time.Second, withPolicy("id: prompts\nrules:\n  - {id: search-prompt, match: 'prompt == \"search\"', effect: allow}\n"))
	r = h.post(t, get, http.Header{"Authorization": {"Bearer " + h.token(t)}})
	if r.status != http.StatusOK || h.hits.Load() != 1 {
		t.Fatalf("prompt rule: status %d, backend hits %d: %v", r.status, h.hits.Load(), r.body)
	}
}

// TestClientResponsesAreDecided: a client's answer to a server-initiated
// request (sampling, elicitation) is a message of its own kind, recorded
// and decided by policy like any other: default-deny, unless a rule allows
// it.
func TestClientResponsesAreDecided(t *testing.T) {
	policy := "id: answers\nrules:\n  - {id: client-answers, match: 'rpc_kind == \"response\"', effect: allow}\n" +
		"  - {id: ask, match: 'tool == \"ask\"', effect: allow}\n"
	h := newHarness(t, 2*time.Second, withPolicy(policy), func(h *harness, c *enforcer.Config) {
		backend := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			ask := strings.Contains(string(h.lastBody), `"ask"`)
			h.mu.Unlock()
			if !ask {
				_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
				return
			}
			// The tool asks the client for a completion before it answers.
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n")
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n")
		})
		c.Upstream = backend.URL
	})
	alice := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	bob := http.Header{"Authorization": {"Bearer " + h.tokenFor(t, "user:bob")}}
	answer := `{"jsonrpc":"2.0","id":5,"result":{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}}`
	unsolicited := func(who http.Header, body string) {
		t.Helper()
		before := h.hits.Load()
		r := h.post(t, body, who)
		if r.status != http.StatusForbidden || errorCode(r) != "rpc_response_unsolicited" || h.hits.Load() != before {
			t.Fatalf("%s: status %d: %v", body, r.status, r.body)
		}
		dec := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
		if dec.Request.RPCKind != "response" || dec.Request.RPCMethod != "" {
			t.Errorf("decision %+v, request %+v", dec.Decision, dec.Request)
		}
	}
	// Answers to nothing the server asked: refused before policy, which
	// would allow them.
	unsolicited(alice, answer)
	unsolicited(alice, `{"jsonrpc":"2.0","id":"s-1","error":{"code":-1,"message":"user declined"}}`)

	ask := h.post(t, toolCall("ask", `{}`), alice)
	if ask.status != http.StatusOK {
		t.Fatalf("ask: %d %v", ask.status, ask.body)
	}
	sr := h.events(t, ask.requestID, event.KindServerRequest)[event.KindServerRequest]
	if sr.Request.RPCMethod != "sampling/createMessage" || sr.Request.RPCKind != "request" || sr.Tenant != "acme" {
		t.Errorf("server request recorded as %+v", sr.Request)
	}
	unsolicited(bob, answer) // another principal cannot answer alice's request
	before := h.hits.Load()
	if r := h.post(t, answer, alice); r.status != http.StatusOK || h.hits.Load() != before+1 || string(h.lastBody) != answer {
		t.Fatalf("solicited answer: status %d: %v", r.status, r.body)
	}
	unsolicited(alice, answer) // answered once already
	// A tool call is not an answer.
	if r := h.post(t, toolCall("search", `{}`), alice); r.status != http.StatusForbidden {
		t.Fatalf("tool call under an answers-only policy: status %d", r.status)
	}
}

// TestMCPEndpoints: on the paths mcp.paths names, only well-formed MCP
// requests pass; elsewhere a JSON-RPC body is still decided on as one,
// whatever the method, and other bodies are plain HTTP.
func TestMCPEndpoints(t *testing.T) {
	h := newHarness(t, 2*time.Second, withPolicy(denyListPolicy), func(_ *harness, c *enforcer.Config) {
		c.MCP.Paths = []string{"/mcp"}
	})
	tok := h.token(t)
	shell := []byte(toolCall("shell", `{"cmd":"id"}`))
	search := []byte(toolCall("search", `{"q":"x"}`))
	json := "Content-Type: application/json"
	tests := []struct {
		name       string
		raw        string
		wantStatus int
		wantCode   string // the refusal's API code
		wantTool   string // recorded, when set
	}{
		{"POST a call", rawHTTP("POST", "/mcp", tok, search, json), 200, "", "search"},
		{"POST under the endpoint", rawHTTP("POST", "/mcp/v1", tok, search, json), 200, "", "search"},
		{"GET the event stream", rawHTTP("GET", "/mcp", tok, nil, "Accept: text/event-stream"), 200, "", ""},
		{"DELETE the session", rawHTTP("DELETE", "/mcp", tok, nil), 200, "", ""},
		{"PUT", rawHTTP("PUT", "/mcp", tok, search, json), 405, "mcp_method_not_allowed", ""},
		{"OPTIONS", rawHTTP("OPTIONS", "/mcp/v1", tok, nil), 405, "mcp_method_not_allowed", ""},
		{"GET with a call", rawHTTP("GET", "/mcp", tok, shell, json), 400, "mcp_request_invalid", "shell"},
		{"POST without a body", rawHTTP("POST", "/mcp", tok, nil, json), 400, "rpc_parse_error", ""},
		{"POST text", rawHTTP("POST", "/mcp", tok, []byte("hello"), json), 400, "rpc_parse_error", ""},
		{"POST JSON that is no message", rawHTTP("POST", "/mcp", tok, []byte(`{"q":"x"}`), json), 400, "rpc_invalid_request", ""},
		{"POST a JSON number", rawHTTP("POST", "/mcp", tok, []byte(`1`), json), 400, "rpc_invalid_request", ""},
		{"elsewhere: PUT a call", rawHTTP("PUT", "/mcpx", tok, shell, json), 403, "policy_denied", "shell"},
		{"elsewhere: GET a call", rawHTTP("GET", "/api", tok, shell, json), 403, "policy_denied", "shell"},
		{"elsewhere: PATCH a batch", rawHTTP("PATCH", "/api", tok, []byte("["+string(shell)+"]"), json), 400, "rpc_invalid_request", ""},
		{"elsewhere: no jsonrpc", rawHTTP("PUT", "/api", tok, []byte(`{"method":"tools/call","params":{"name":"shell"}}`), json), 400, "rpc_invalid_request", ""},
		{"elsewhere: UTF-16", rawHTTP("POST", "/api", tok, utf16Body(string(shell), true, false), json), 400, "rpc_parse_error", ""},
		{"elsewhere: gzip", rawHTTP("POST", "/api", tok, []byte(compressed("gzip", string(shell))), "Content-Encoding: gzip"), 415, "body_encoding_unsupported", ""},
		{"elsewhere: lower-case put", rawHTTP("put", "/api", tok, []byte("x")), 400, "method_invalid", ""},
		{"elsewhere: text", rawHTTP("PUT", "/api", tok, []byte("hello"), "Content-Type: text/plain; charset=UTF-8"), 200, "", ""},
		{"elsewhere: JSON that is no message", rawHTTP("POST", "/api", tok, []byte(`{"q":"x"}`), json), 200, "", ""},
		{"elsewhere: binary", rawHTTP("POST", "/api", tok, []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "Content-Type: image/png"), 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			resp, body, _ := h.rawRequest(t, tt.raw)
			if resp.StatusCode != tt.wantStatus || refusalCode(body) != tt.wantCode {
				t.Fatalf("status %d code %q, want %d %q: %v", resp.StatusCode, refusalCode(body), tt.wantStatus, tt.wantCode, body)
			}
			if forwarded := h.hits.Load() != before; forwarded != (tt.wantStatus == 200) {
				t.Fatalf("forwarded = %v", forwarded)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST, GET, DELETE" {
				t.Errorf("Allow = %q", resp.Header.Get("Allow"))
			}
			if tt.wantTool != "" {
				dec := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindDecision)[event.KindDecision]
				if dec.Request.Tool != tt.wantTool {
					t.Errorf("recorded tool %q, want %q", dec.Request.Tool, tt.wantTool)
				}
			}
		})
	}
}
