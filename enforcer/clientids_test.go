package enforcer_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

const sessionBudgetPolicy = `id: sessions
rules:
  - id: allow-search
    match: 'tool == "search"'
    effect: allow
    obligations:
      budget: {per: session, calls: 3, window: 1h}
  - id: allow-rest
    match: 'true'
    effect: allow
`

// sessionHarness serves sessionBudgetPolicy; its backend issues the
// session id "srv-<n>" in the Mcp-Session-Id of every initialize answer.
func sessionHarness(t *testing.T) *harness {
	issued := 0
	return newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		c.PolicyFile = filepath.Join(h.dir, "sessions.yaml")
		if err := os.WriteFile(c.PolicyFile, []byte(sessionBudgetPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		backend := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			if strings.Contains(string(h.lastBody), `"initialize"`) {
				issued++
				w.Header().Set("Mcp-Session-Id", fmt.Sprint("srv-", issued))
			}
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
		})
		c.Upstream = backend.URL
	})
}

// noSid is a token of sub without a session claim: its session can only
// come from Mcp-Session-Id.
func noSid(h *harness, t *testing.T, sub string) http.Header {
	tok := h.tokenWith(t, func(c map[string]any) { c["sub"] = sub; delete(c, "sid") })
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func withHeader(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// TestRotatingSessionIDsShareOneBudget: a session id the client makes up
// is no budget scope; a fresh one per call used to open a fresh budget per
// call (50 of 50 calls through a 3-call budget).
func TestRotatingSessionIDsShareOneBudget(t *testing.T) {
	h := sessionHarness(t)
	alice := noSid(h, t, "user:alice")
	allowed := 0
	for i := range 50 {
		r := h.post(t, toolCall("search", `{}`), withHeader(alice, "Mcp-Session-Id", fmt.Sprint("made-up-", i)))
		if r.status == http.StatusOK {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d of 50 calls with rotating session ids got through a 3-call budget", allowed)
	}
}

// TestSessionOfAnotherPrincipalRefused: a session id bound to alice, by
// her presenting it or by the backend issuing it to her, cannot be used by
// bob, and his refusal is not recorded inside her session.
func TestSessionOfAnotherPrincipalRefused(t *testing.T) {
	h := sessionHarness(t)
	alice, bob := noSid(h, t, "user:alice"), noSid(h, t, "user:bob")
	if r := h.post(t, toolCall("search", `{}`), withHeader(alice, "Mcp-Session-Id", "alice-chose")); r.status != http.StatusOK {
		t.Fatalf("alice: %d %v", r.status, r.body)
	}
	init := h.post(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, alice)
	if init.status != http.StatusOK {
		t.Fatalf("initialize: %d %v", init.status, init.body)
	}
	for _, sid := range []string{"alice-chose", "srv-1"} {
		before := h.hits.Load()
		r := h.post(t, toolCall("search", `{}`), withHeader(bob, "Mcp-Session-Id", sid))
		if r.status != http.StatusForbidden || errorCode(r) != "session_foreign" || h.hits.Load() != before {
			t.Fatalf("bob in alice's session %s: %d %v", sid, r.status, r.body)
		}
		d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
		if d.Decision.Code != "session_foreign" || d.Identity.SessionID != "" || d.Identity.Subject != "user:bob" {
			t.Errorf("recorded %+v in session %q", d.Decision, d.Identity.SessionID)
		}
	}
	// Alice's own use of the issued id is the server's session, with a budget of its own.
	for i := range 4 {
		r := h.post(t, toolCall("search", `{}`), withHeader(alice, "Mcp-Session-Id", "srv-1"))
		want := http.StatusOK
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if r.status != want {
			t.Fatalf("alice call %d in srv-1: %d %v", i, r.status, r.body)
		}
		if i == 0 {
			d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
			if d.Identity.SessionID != "srv-1" || d.Identity.SessionSource != "server" {
				t.Errorf("session %q from %q", d.Identity.SessionID, d.Identity.SessionSource)
			}
		}
	}
	// A task id is bound the same way.
	if r := h.post(t, toolCall("other", `{}`), withHeader(alice, "Agent-Task-Id", "t-1")); r.status != http.StatusOK {
		t.Fatalf("alice's task: %d %v", r.status, r.body)
	}
	if r := h.post(t, toolCall("other", `{}`), withHeader(bob, "Agent-Task-Id", "t-1")); r.status != http.StatusForbidden || errorCode(r) != "task_foreign" {
		t.Fatalf("bob in alice's task: %d %v", r.status, r.body)
	}
}

func TestMalformedClientIDsRefused(t *testing.T) {
	h := sessionHarness(t)
	alice := noSid(h, t, "user:alice")
	for name, hdr := range map[string]http.Header{
		"space":           withHeader(alice, "Mcp-Session-Id", "a b"),
		"too long":        withHeader(alice, "Mcp-Session-Id", strings.Repeat("s", 129)),
		"two":             withHeader(alice, "Mcp-Session-Id", "a", "Mcp-Session-Id", "b"),
		"non-ASCII":       withHeader(alice, "Mcp-Session-Id", "sé"),
		"empty task":      withHeader(alice, "Agent-Task-Id", ""),
		"task with a tab": withHeader(alice, "Agent-Task-Id", "t\tx"),
	} {
		t.Run(name, func(t *testing.T) {
			r := h.post(t, toolCall("search", `{}`), hdr)
			if r.status != http.StatusBadRequest || errorCode(r) != "client_id_invalid" {
				t.Fatalf("%d %v", r.status, r.body)
			}
		})
	}
	if h.hits.Load() != 0 {
		t.Errorf("backend hit %d times", h.hits.Load())
	}
}

// TestSessionHeaderBesideTheTokensIsRecorded: a token naming its session
// and a header naming another: the backend acts in the header's, so the
// record keeps it beside the token's.
func TestSessionHeaderBesideTheTokensIsRecorded(t *testing.T) {
	h := sessionHarness(t)
	tok := http.Header{"Authorization": {"Bearer " + h.token(t)}} // sid sess-1
	r := h.post(t, toolCall("search", `{}`), withHeader(tok, "Mcp-Session-Id", "other-session-7"))
	if r.status != http.StatusOK {
		t.Fatalf("%d %v", r.status, r.body)
	}
	d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if d.Identity.SessionID != "sess-1" || d.Identity.SessionSource != "token" || d.Request.Headers["mcp-session-id"] != "other-session-7" {
		t.Errorf("session %q (%s), headers %v", d.Identity.SessionID, d.Identity.SessionSource, d.Request.Headers)
	}
}
