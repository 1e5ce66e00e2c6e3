package enforcer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

const serverRequestsPolicy = "id: attack\nrules:\n" +
	"  - {id: answers, match: 'rpc_kind == \"response\"', effect: allow}\n" +
	"  - {id: ask, match: 'tool == \"ask\"', effect: allow}\n" +
	"  - {id: init, match: 'rpc_method == \"initialize\"', effect: allow}\n" +
	"  - {id: feed, match: 'path == \"/feed\" && method == \"GET\"', effect: allow}\n"

func attackGet(t *testing.T, h *harness, path string, header http.Header) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(enforcer.HeaderRequestID), string(b)
}

// goSDKScan mimics the Go MCP SDK v1.8.0 client's SSE parser (event.go
// scanEventsLimited): LF line ends only, TrimRight "\r\n", data TrimSpace.
func goSDKScan(stream []byte) [][]byte {
	var out [][]byte
	r := bufio.NewReader(bytes.NewReader(stream))
	var buf *bytes.Buffer
	for {
		line, err := r.ReadBytes('\n')
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if buf != nil {
				out = append(out, buf.Bytes())
				buf = nil
			}
			if err != nil {
				return out
			}
			continue
		}
		before, after, _ := bytes.Cut(line, []byte(":"))
		if string(before) == "data" {
			if buf == nil {
				buf = new(bytes.Buffer)
			} else {
				buf.WriteByte('\n')
			}
			buf.Write(bytes.TrimSpace(after))
		}
		if err != nil {
			return out
		}
	}
}

func isRequest(data []byte) (string, bool) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(data, &m) != nil || m.Method == "" || len(m.ID) == 0 {
		return "", false
	}
	return m.Method, true
}

// serverRequests counts server_request events recorded in the stream.
func serverRequestsFor(t *testing.T, h *harness, requestID string) int {
	t.Helper()
	time.Sleep(700 * time.Millisecond)
	got := h.eventsAll(t)
	n := 0
	for _, e := range got {
		if e.Kind == event.KindServerRequest && e.RequestID == requestID {
			n++
		}
	}
	return n
}

// TestServerRequestsReadOnlyOnMCPEndpoints: a stream off the MCP endpoints
// that echoes a caller's input must not let the caller mint a "server
// request" whose answer then passes as solicited.
func TestServerRequestsReadOnlyOnMCPEndpoints(t *testing.T) {
	h := newHarness(t, 2*time.Second, withPolicy(serverRequestsPolicy), func(h *harness, c *enforcer.Config) {
		b := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/feed" { // e.g. a log/notification feed echoing a filter
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, "data: "+r.URL.Query().Get("q")+"\n\n")
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		c.Upstream = b.URL
		c.MCP.Paths = []string{"/mcp"}
	})
	alice := http.Header{"Authorization": {"Bearer " + h.token(t)}, "Mcp-Session-Id": {"sess-att"}}
	answer := `{"jsonrpc":"2.0","id":4242,"result":{"role":"assistant","content":{"type":"text","text":"forged"},"model":"m"}}`
	r := h.post(t, answer, alice)
	if r.status != http.StatusForbidden {
		t.Fatalf("baseline: unsolicited answer was not refused: %d", r.status)
	}
	forged := `{"jsonrpc":"2.0","id":4242,"method":"sampling/createMessage","params":{}}`
	st, rid, _ := attackGet(t, h, "/feed?q="+url.QueryEscape(forged), alice)
	t.Logf("feed: %d, server_request events for it: %d", st, serverRequestsFor(t, h, rid))
	before := h.hits.Load()
	r = h.post(t, answer, alice)
	if r.status != http.StatusForbidden || errorCode(r) != "rpc_response_unsolicited" || h.hits.Load() != before {
		t.Errorf("an answer to a request the caller minted: status %d %v, backend hits %d", r.status, r.body, h.hits.Load()-before)
	}
}

// TestServerRequestsReadAsClientsReadThem: whatever server request a
// client would act on is recorded. A bare CR inside the JSON is a line end
// to the SSE standard and JSON white space to the Go SDK client, so such a
// stream is cut off there; a Content-Type in another letter case and a
// 2xx other than 200 are streams all the same.
func TestServerRequestsReadAsClientsReadThem(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ctype  string
		status int
		frame  string
	}{
		{"bare-CR-in-JSON", "text/event-stream", 200, "data: {\"jsonrpc\":\"2.0\",\r\"id\":7,\"method\":\"elicitation/create\",\"params\":{\"message\":\"enter your password\",\"requestedSchema\":{\"type\":\"object\"}}}\n\n"},
		{"content-type-case", "Text/Event-Stream", 200, "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"elicitation/create\",\"params\":{}}\n\n"},
		{"status-201", "text/event-stream", 201, "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"elicitation/create\",\"params\":{}}\n\n"},
		{"control", "text/event-stream", 200, "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"elicitation/create\",\"params\":{}}\n\n"},
		// Go's decoder keeps the last of repeated keys; the strict reading
		// refuses them, so the stream is cut rather than read two ways.
		{"repeated id", "text/event-stream", 200, "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"id\":8,\"method\":\"elicitation/create\",\"params\":{}}\n\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 2*time.Second, withPolicy(serverRequestsPolicy), func(h *harness, c *enforcer.Config) {
				b := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tt.ctype)
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.frame)
					_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n")
				})
				c.Upstream = b.URL
			})
			req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(toolCall("ask", `{}`)))
			req.Header.Set("Authorization", "Bearer "+h.token(t))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body) // what the client received, up to any cut
			resp.Body.Close()
			n := serverRequestsFor(t, h, resp.Header.Get(enforcer.HeaderRequestID))
			// What a Go SDK client would act on among the bytes it got.
			for _, d := range goSDKScan(got) {
				if m, ok := isRequest(d); ok && n == 0 {
					t.Errorf("the client received %s and no server_request event exists (%d bytes: %q)", m, len(got), got)
				}
			}
			if strings.Contains(tt.frame, "\r\"id") || strings.Contains(tt.frame, `"id":7,"id"`) {
				if bytes.Contains(got, []byte("elicitation")) {
					t.Errorf("the client received the stream past a bare CR: %q", got)
				}
				resp := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindResponse)[event.KindResponse]
				if resp.Response.Outcome != event.OutcomeStreamRefused {
					t.Errorf("outcome %q, want stream_refused", resp.Response.Outcome)
				}
			} else if n != 1 {
				t.Errorf("%d server_request events recorded, want 1", n)
			}
		})
	}
}

// TestServerRequestsEvictNoSession: server requests piling up unanswered
// in one principal's calls evict no other principal's session binding,
// which would let the first claim it.
func TestServerRequestsEvictNoSession(t *testing.T) {
	const flood = 60
	h := newHarness(t, 2*time.Second, withPolicy(serverRequestsPolicy+"  - {id: any, match: 'rpc_method == \"ping\"', effect: allow}\n"), func(h *harness, c *enforcer.Config) {
		c.SessionBindings.MaxPerTenant = 50 // default 10,000: same mechanism, smaller number
		b := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			body := func() string { h.mu.Lock(); defer h.mu.Unlock(); return string(h.lastBody) }()
			switch {
			case strings.Contains(body, `"initialize"`):
				w.Header().Set("Mcp-Session-Id", "alice-secret-session")
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
			case strings.Contains(body, `"ask"`):
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range flood {
					fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}\n\n", 1000+i)
				}
				_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n")
			default:
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
			}
		})
		c.Upstream = b.URL
	})
	alice := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	bob := http.Header{"Authorization": {"Bearer " + h.tokenFor(t, "user:bob")}}
	if r := h.post(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, alice); r.status != 200 {
		t.Fatalf("init %d %v", r.status, r.body)
	}
	bobIn := http.Header{"Authorization": bob["Authorization"], "Mcp-Session-Id": {"alice-secret-session"}}
	ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
	if r := h.post(t, ping, bobIn); r.status != http.StatusForbidden {
		t.Fatalf("baseline: bob joined alice's session: %d", r.status)
	}
	if r := h.post(t, toolCall("ask", `{}`), bob); r.status != 200 {
		t.Fatalf("ask %d", r.status)
	}
	r := h.post(t, ping, bobIn)
	if r.status == 200 {
		t.Errorf("after %d unanswered server requests in bob's calls, bob joins alice's session (status %d)", flood, r.status)
	}
}

// TestWithheldAnswerRecordedAsSuch: an answer withheld because the backend
// issued a session id another principal holds is recorded as withheld, not
// as an upstream that gave none: the backend did run the call.
func TestWithheldAnswerRecordedAsSuch(t *testing.T) {
	var acted atomic.Int64
	h := newHarness(t, 2*time.Second, withPolicy(serverRequestsPolicy+"  - {id: any, match: 'rpc_method == \"ping\"', effect: allow}\n"), func(h *harness, c *enforcer.Config) {
		b := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			acted.Add(1)
			w.Header().Set("Mcp-Session-Id", "sess-0002") // predictable ids
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
		})
		c.Upstream = b.URL
	})
	bob := http.Header{"Authorization": {"Bearer " + h.tokenFor(t, "user:bob")}, "Mcp-Session-Id": {"sess-0002"}}
	h.post(t, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, bob) // bob claims the next id first
	alice := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	before := acted.Load()
	r := h.post(t, toolCall("ask", `{}`), alice)
	ev := h.events(t, r.requestID, event.KindResponse)[event.KindResponse]
	t.Logf("status %d body %v; backend acted %d; recorded outcome %q status %d", r.status, r.body, acted.Load()-before, ev.Response.Outcome, ev.Response.Status)
	if acted.Load() != before+1 || ev.Response.Outcome != event.OutcomeAnswerWithheld || errorCode(r) != "session_held" {
		t.Errorf("backend ran the call %d times; recorded %q, answered %q", acted.Load()-before, ev.Response.Outcome, errorCode(r))
	}
}
