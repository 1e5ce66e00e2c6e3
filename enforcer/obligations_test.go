package enforcer_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/natstest"
)

const obligationsPolicy = `id: obligations
rules:
  - id: audit-email
    match: 'tool == "send_email"'
    effect: audit
    reason: "would flag email"
  - id: allow-email
    match: 'tool == "send_email"'
    effect: allow
    obligations:
      record_args: true
      redact: [auth.token]
      budget: {per: session, calls: 2, window: 1h}
  - id: allow-search
    match: 'tool == "search"'
    effect: allow
`

func TestObligationsShadowAndBudget(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		p := filepath.Join(h.dir, "obligations.yaml")
		if err := os.WriteFile(p, []byte(obligationsPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PolicyFile = p
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	email := toolCall("send_email", `{"to":"cfo@acme.example","auth":{"token":"s3cret","user":"bot"}}`)

	first := h.post(t, email, auth)
	if first.status != http.StatusOK {
		t.Fatalf("first email: %d %v", first.status, first.body)
	}
	dec := h.events(t, first.requestID, event.KindDecision)[event.KindDecision]
	var recorded map[string]any
	if err := json.Unmarshal(dec.Request.Args, &recorded); err != nil {
		t.Fatalf("arguments not recorded: %q", dec.Request.Args)
	}
	if auth := recorded["auth"].(map[string]any); auth["token"] != "[REDACTED]" || auth["user"] != "bot" || recorded["to"] != "cfo@acme.example" {
		t.Errorf("recorded arguments %v: want auth.token redacted, the rest kept", recorded)
	}
	if len(dec.Decision.Shadow) != 1 || dec.Decision.Shadow[0] != "audit-email" {
		t.Errorf("shadow = %v, want [audit-email]", dec.Decision.Shadow)
	}

	search := h.post(t, toolCall("search", `{"q":"secret plans"}`), auth)
	if d := h.events(t, search.requestID, event.KindDecision)[event.KindDecision]; d.Request.Args != nil {
		t.Errorf("arguments recorded without record_args: %s", d.Request.Args)
	}

	if r := h.post(t, email, auth); r.status != http.StatusOK {
		t.Fatalf("second email: %d", r.status)
	}
	over := h.post(t, email, auth)
	if over.status != http.StatusTooManyRequests || errorCode(over) != "budget_exceeded" {
		t.Fatalf("third email: %d %v, want 429 budget_exceeded", over.status, over.body)
	}
	if d := h.events(t, over.requestID, event.KindDecision)[event.KindDecision]; d.Decision.Code != "budget_exceeded" || d.Decision.Effect != event.EffectDeny {
		t.Errorf("over-budget decision = %+v", d.Decision)
	}
}

const budgetTablePolicy = `id: budgets
rules:
  - id: allow-search
    match: 'tool == "search"'
    effect: allow
    obligations:
      budget: {per: session, calls: 5, window: 1h}
`

// A tenant flooding fresh sessions fills its own share of the budget
// table only: its overflow is refused as table full, truthfully recorded,
// and another tenant's calls go on; the total bound refuses a third
// tenant's new session the same way, evicting no one.
func TestBudgetTableIsPartitionedByTenant(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		p := filepath.Join(h.dir, "budgets.yaml")
		if err := os.WriteFile(p, []byte(budgetTablePolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PolicyFile = p
		c.Budgets = policy.BudgetLimits{MaxPerTenant: 10, MaxTotal: 11}
	})
	search := toolCall("search", `{"q":"x"}`)
	call := func(tenant, session string) reply {
		t.Helper()
		return h.post(t, search, http.Header{
			"Authorization":  {"Bearer " + h.sessionToken(t, tenant, session)},
			"Mcp-Session-Id": {session},
		})
	}
	for i := range 10 {
		if r := call("acme", fmt.Sprintf("flood-%d", i)); r.status != http.StatusOK {
			t.Fatalf("acme session %d within its share: %d %v", i, r.status, r.body)
		}
	}
	var over reply
	for i := 10; i < 15; i++ {
		if over = call("acme", fmt.Sprintf("flood-%d", i)); over.status != http.StatusServiceUnavailable || errorCode(over) != "budget_table_full" {
			t.Fatalf("acme session %d past its share: %d %v, want 503 budget_table_full", i, over.status, over.body)
		}
	}
	d := h.events(t, over.requestID, event.KindDecision)[event.KindDecision].Decision
	if d.Code != "budget_table_full" || d.Effect != event.EffectDeny || !strings.Contains(d.Reason, "tenant's 10 counters") || strings.Contains(d.Reason, "spent") {
		t.Errorf("recorded refusal %+v, want budget_table_full saying the tenant's share is full", d)
	}

	if r := call("globex", "g-1"); r.status != http.StatusOK {
		t.Fatalf("other tenant's first call: %d %v, want it allowed", r.status, r.body)
	}
	third := call("initech", "i-1")
	if third.status != http.StatusServiceUnavailable || errorCode(third) != "budget_table_full" {
		t.Fatalf("third tenant past the total: %d %v, want 503 budget_table_full", third.status, third.body)
	}
	if d := h.events(t, third.requestID, event.KindDecision)[event.KindDecision].Decision; !strings.Contains(d.Reason, "all 11 counters") {
		t.Errorf("recorded refusal %+v, want it to say the whole table is full", d)
	}
	if r := call("acme", "flood-0"); r.status != http.StatusOK {
		t.Fatalf("acme's held session after the table filled: %d %v, want it still counted", r.status, r.body)
	}
}

// sessionToken signs a token like token's for tenant, with session sid.
func (h *harness) sessionToken(t *testing.T, tenant, sid string) string {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"iss": "https://idp.test", "aud": "rampart", "sub": "user:alice", "tenant": tenant,
		"exp": time.Now().Add(time.Hour).Unix(), "sid": sid,
		"act": map[string]any{"sub": "agent:planner"},
	})
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES256, h.signKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPolicyReloadIsRecorded(t *testing.T) {
	var policyPath string
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		policyPath = c.PolicyFile
		c.PolicyReloadInterval = 50 * time.Millisecond
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	if r := h.post(t, toolCall("read_file", `{}`), auth); r.status != http.StatusOK {
		t.Fatalf("before reload: %d", r.status)
	}
	if err := os.WriteFile(policyPath, []byte("id: locked\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloaded := waitPolicyEvent(t, h, "")
	if reloaded.Decision.PolicyID != "locked" {
		t.Fatalf("reload event %+v", reloaded.Decision)
	}
	if r := h.post(t, toolCall("read_file", `{}`), auth); r.status != http.StatusForbidden {
		t.Fatalf("after reload to a deny-all policy: %d", r.status)
	}
	// A broken file is recorded and ignored: the last good policy decides.
	if err := os.WriteFile(policyPath, []byte("id: broken\nrules:\n  - id: x\n    match: 'tool +'\n    effect: allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	failed := waitPolicyEvent(t, h, "policy_reload_failed")
	if failed.Decision.PolicyHash != reloaded.Decision.PolicyHash {
		t.Errorf("failed reload names %s as deciding, want %s", failed.Decision.PolicyHash, reloaded.Decision.PolicyHash)
	}
	if r := h.post(t, toolCall("read_file", `{}`), auth); r.status != http.StatusForbidden {
		t.Fatalf("after a failed reload: %d", r.status)
	}
}

// waitPolicyEvent returns the first policy event with the given code.
func waitPolicyEvent(t *testing.T, h *harness, code string) *event.Event {
	t.Helper()
	var found *event.Event
	natstest.ReadEvents(t, h.nats.URL(), 10*time.Second, func(batch []*event.Event) bool {
		for _, e := range batch {
			if e.Decision.Code == code {
				found = e
				return false
			}
		}
		return true
	}, "rampart.v1.~.policy")
	if found == nil {
		t.Fatalf("no policy event with code %q", code)
	}
	return found
}

func TestQueryAndResourceReachPolicyAndRecord(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		p := filepath.Join(h.dir, "resources.yaml")
		policy := "id: resources\nrules:\n  - id: reports-only\n    match: 'rpc_method == \"resources/read\" && glob(resource, \"file:///reports/**\") && query == \"v=2\" && headers[\"user-agent\"].startsWith(\"agent-sdk/\")'\n    effect: allow\n"
		if err := os.WriteFile(p, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PolicyFile = p
		c.RecordHeaders = []string{"User-Agent", "X-Absent"}
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}, "User-Agent": {"agent-sdk/1.2"}}
	read := func(uri, query string) reply {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp?"+query,
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"`+uri+`"}}`))
		req.Header = auth.Clone()
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return reply{status: resp.StatusCode, requestID: resp.Header.Get(enforcer.HeaderRequestID)}
	}
	ok := read("file:///reports/q3.md", "v=2")
	if ok.status != http.StatusOK {
		t.Fatalf("report read: %d", ok.status)
	}
	d := h.events(t, ok.requestID, event.KindDecision)[event.KindDecision]
	if d.Request.Resource != "file:///reports/q3.md" || d.Request.Query != "v=2" {
		t.Errorf("recorded resource %q query %q", d.Request.Resource, d.Request.Query)
	}
	if len(d.Request.Headers) != 1 || d.Request.Headers["user-agent"] != "agent-sdk/1.2" {
		t.Errorf("recorded headers %v, want only user-agent", d.Request.Headers)
	}
	if r := read("file:///etc/shadow", "v=2"); r.status != http.StatusForbidden {
		t.Fatalf("outside reports: %d", r.status)
	}
}

func TestRequestsBeyondMaxInFlightAreRefusedAtOnce(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		c.MaxInFlight = 1
		backend := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
		})
		c.Upstream = backend.URL
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	first := make(chan reply, 1)
	go func() { first <- h.post(t, toolCall("search", `{}`), auth) }()
	<-entered // the first request holds the only slot, inside the backend
	if r := h.post(t, toolCall("search", `{}`), auth); r.status != http.StatusServiceUnavailable || errorCode(r) != "overloaded" {
		t.Fatalf("second request: %d %v, want 503 overloaded", r.status, r.body)
	}
	close(release)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("first request: %d", r.status)
	}
}
