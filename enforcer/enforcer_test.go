package enforcer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

const testPolicy = `id: e2e
rules:
  - id: outside-task
    match: 'task.declared && !within_task_scope()'
    effect: deny
    reason: "outside what the task was declared for"
  - id: task-api
    match: 'path.startsWith("/_rampart/tasks") && tenant in ["acme", "globex"]'
    effect: allow
    reason: "orchestrators declare and complete tasks"
  - id: allow-search
    match: 'tool in ["search", "read_file"] && tenant == "acme"'
    effect: allow
    reason: "read-only tools"
  - id: deny-shell
    match: 'tool == "shell"'
    effect: deny
    reason: "no shell for agents"
  - id: allow-gateway-path
    match: 'path == "/gw/allowed" && tenant == "acme"'
    effect: allow
    reason: "decided on the path: the gateway does not pass the body"
`

// harness is an enforcer served (by Serve, with its hardening) in front of
// a counting backend, publishing to a real embedded JetStream.
type harness struct {
	nats    *natstest.Server
	url     string // the enforcer's base URL
	addr    string // its host:port
	grpc    string // its ext_authz gRPC address, when enabled
	dir     string
	signKey jwk.Key
	hits    atomic.Int64
	onServe func(*enforcer.Enforcer) // called before the enforcer serves, when set

	mu       sync.Mutex
	upstream http.Header // headers of the last forwarded request
	lastBody []byte
}

// newHarness starts an enforcer with publishTimeout and the edits of opts
// applied to its config; the backend answers with handler when not nil.
func newHarness(t *testing.T, publishTimeout time.Duration, opts ...func(*harness, *enforcer.Config)) *harness {
	t.Helper()
	h := &harness{nats: natstest.Run(t), dir: t.TempDir()}
	cfg := h.config(t, publishTimeout)
	for _, o := range opts {
		o(h, &cfg)
	}
	h.serve(t, cfg)
	return h
}

// backend starts the counting backend; handler, when set, answers.
func (h *harness) backend(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.upstream, h.lastBody = r.Header.Clone(), body
		h.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	}))
	t.Cleanup(b.Close)
	return b
}

func (h *harness) lastUpstream() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.upstream
}

// config writes a key set and the test policy and returns a config for
// them, proxying to a fresh counting backend.
func (h *harness) config(t *testing.T, publishTimeout time.Duration) enforcer.Config {
	t.Helper()
	if h.signKey == nil {
		raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h.signKey, _ = jwk.FromRaw(raw)
		_ = h.signKey.Set(jwk.KeyIDKey, "k1")
		pub, _ := h.signKey.PublicKey()
		set := jwk.NewSet()
		_ = set.AddKey(pub)
		writeJSON(t, filepath.Join(h.dir, "jwks.json"), set)
		if err := os.WriteFile(filepath.Join(h.dir, "policy.yaml"), []byte(testPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	backend := h.backend(t, nil)
	return enforcer.Config{
		Listen:     "127.0.0.1:0",
		Upstream:   backend.URL,
		Instance:   "enf-test",
		PolicyFile: filepath.Join(h.dir, "policy.yaml"),
		Identity:   identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: "https://idp.test", Audience: "rampart", JWKSFile: filepath.Join(h.dir, "jwks.json")}},
		NATS:       audit.Config{URL: stream.URLs(h.nats.URL()), PublishTimeout: publishTimeout},
	}
}

// serve starts an enforcer for cfg on free loopback ports until the test
// ends.
func (h *harness) serve(t *testing.T, cfg enforcer.Config) {
	t.Helper()
	e, err := enforcer.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if h.onServe != nil {
		h.onServe(e)
	}
	ls := enforcer.Listeners{HTTP: listen(t)}
	if slices.Contains(cfg.Modes, enforcer.ModeExtAuthzGRPC) {
		ls.GRPC = listen(t)
		h.grpc = ls.GRPC.Addr().String()
	}
	h.addr = ls.HTTP.Addr().String()
	h.url = "http://" + h.addr
	if cfg.TLS.CertFile != "" {
		h.url = "https://" + h.addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// token signs a token for user:alice of tenant acme, acted for by
// agent:planner.
func (h *harness) token(t *testing.T) string {
	t.Helper()
	return h.tokenFor(t, "user:alice")
}

// tokenFor signs a token like token's, for subject sub.
func (h *harness) tokenFor(t *testing.T, sub string) string {
	t.Helper()
	return h.tokenWith(t, func(c map[string]any) { c["sub"] = sub })
}

// tokenWith signs a token like token's with the claims edit makes.
func (h *harness) tokenWith(t *testing.T, edit func(claims map[string]any)) string {
	t.Helper()
	claims := map[string]any{
		"iss": "https://idp.test", "aud": "rampart", "sub": "user:alice", "tenant": "acme",
		"exp": time.Now().Add(time.Hour).Unix(), "sid": "sess-1",
		"act": map[string]any{"sub": "agent:planner"},
	}
	edit(claims)
	payload, _ := json.Marshal(claims)
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES256, h.signKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func toolCall(tool, args string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
}

type reply struct {
	status    int
	requestID string
	body      map[string]any
}

func (h *harness) post(t *testing.T, body string, header http.Header) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, requestID: resp.Header.Get(enforcer.HeaderRequestID)}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// events returns the events of one request, waiting until want kinds have
// arrived or a deadline passes.
func (h *harness) events(t *testing.T, requestID string, want ...event.Kind) map[event.Kind]*event.Event {
	t.Helper()
	got := map[event.Kind]*event.Event{}
	complete := func() bool {
		for _, k := range want {
			if got[k] == nil {
				return false
			}
		}
		return true
	}
	ok := h.readEvents(t, 10*time.Second, func(batch []*event.Event) bool {
		for _, e := range batch {
			if e.RequestID == requestID {
				got[e.Kind] = e
			}
		}
		return !complete()
	})
	if !ok {
		t.Fatalf("events of %s: have %d, want %v", requestID, len(got), want)
	}
	return got
}

// eventsAll returns every event in the stream so far.
func (h *harness) eventsAll(t *testing.T) []*event.Event {
	t.Helper()
	var out []*event.Event
	h.readEvents(t, 5*time.Second, func(batch []*event.Event) bool {
		out = append(out, batch...)
		return len(batch) > 0
	})
	return out
}

// readEvents reads the events stream from its start: see
// natstest.ReadEvents.
func (h *harness) readEvents(t *testing.T, deadline time.Duration, more func(batch []*event.Event) bool) bool {
	t.Helper()
	return natstest.ReadEvents(t, h.nats.URL(), deadline, more)
}

// errorCode is the refusal's Rampart code, from its error body or, for a
// JSON-RPC error, from the error's data.
func errorCode(r reply) string {
	return bodyCode(r.body)
}

func bodyCode(body map[string]any) string { return refusalOf(body)["code"] }

// refusalOf reads a refusal's code, rule_id, policy_id and request_id from
// Rampart's error body or from a JSON-RPC error's data.
func refusalOf(body map[string]any) map[string]string {
	e, _ := body["error"].(map[string]any)
	from := e
	if _, ok := e["code"].(string); !ok {
		from, _ = e["data"].(map[string]any)
	}
	out := map[string]string{}
	for _, k := range []string{"code", "rule_id", "policy_id", "request_id"} {
		out[k], _ = from[k].(string)
	}
	if id, ok := body["request_id"].(string); ok {
		out["request_id"] = id
	}
	return out
}

func TestAllowedCallIsRecordedAndForwarded(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	args := `{"q":"rampart"}`
	r := h.post(t, toolCall("search", args), http.Header{
		"Authorization":    {"Bearer " + h.token(t)},
		"Traceparent":      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"X-Rampart-Tenant": {"evil"}, // must not reach the backend
	})
	if r.status != http.StatusOK || h.hits.Load() != 1 {
		t.Fatalf("status %d, backend hits %d: %v", r.status, h.hits.Load(), r.body)
	}
	up := h.lastUpstream()
	if up.Get(enforcer.HeaderTenant) != "acme" || up.Get(enforcer.HeaderSubject) != "user:alice" || up.Get(enforcer.HeaderRequestID) != r.requestID {
		t.Errorf("upstream headers = %v", up)
	}
	if len(up.Values(enforcer.HeaderTenant)) != 1 {
		t.Errorf("client-supplied tenant header survived: %v", up.Values(enforcer.HeaderTenant))
	}

	ev := h.events(t, r.requestID, event.KindRequest, event.KindDecision, event.KindResponse)
	req, dec, resp := ev[event.KindRequest], ev[event.KindDecision], ev[event.KindResponse]
	if req.Tenant != "acme" || req.Request.Tool != "search" || req.Request.RPCMethod != "tools/call" || req.Request.ArgsDigest != mcp.Digest([]byte(args)) {
		t.Errorf("request event = %+v / %+v", req, req.Request)
	}
	if req.Trace.TraceParent == "" || req.Identity == nil || req.Identity.CurrentActor() != "agent:planner" || req.Identity.SessionID != "sess-1" {
		t.Errorf("request event trace/identity = %+v / %+v", req.Trace, req.Identity)
	}
	if dec.Decision.Effect != event.EffectAllow || dec.Decision.RuleID != "allow-search" || dec.Decision.PolicyID != "e2e" || !strings.HasPrefix(dec.Decision.PolicyHash, "sha256:") {
		t.Errorf("decision = %+v", dec.Decision)
	}
	if resp.Response.Status != http.StatusOK || resp.Response.Bytes == 0 || resp.Response.DurationNs <= 0 {
		t.Errorf("response = %+v", resp.Response)
	}
	if req.Instance != "enf-test" || dec.Seq != req.Seq+1 || resp.Seq != dec.Seq+1 {
		t.Errorf("instance/seq = %s %d %d %d", req.Instance, req.Seq, dec.Seq, resp.Seq)
	}
}

func TestRefusedRequestsAreRecordedNotForwarded(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}
	tests := []struct {
		name       string
		body       string
		header     http.Header
		wantStatus int
		wantCode   string // in the response; ending in "_": a prefix
		wantRule   string // decision rule id
		wantDCode  string // decision code; ending in "_": a prefix
		wantTenant string
	}{
		{
			name: "policy deny", body: toolCall("shell", `{"cmd":"rm -rf /"}`), header: auth,
			wantStatus: http.StatusForbidden, wantCode: "policy_denied", wantRule: "deny-shell", wantTenant: "acme",
		},
		{
			name: "default deny", body: toolCall("write_file", `{}`), header: auth,
			wantStatus: http.StatusForbidden, wantCode: "policy_denied", wantRule: "default-deny", wantTenant: "acme",
		},
		{
			name: "no token", body: toolCall("search", `{}`), header: http.Header{},
			wantStatus: http.StatusUnauthorized, wantCode: "token_missing", wantDCode: "token_missing",
		},
		{
			name: "bad token", body: toolCall("search", `{}`), header: http.Header{"Authorization": {"Bearer x.y.z"}},
			// Which token_* code is identity's business; 401 is ours.
			wantStatus: http.StatusUnauthorized, wantCode: "token_", wantDCode: "token_",
		},
		{
			name: "malformed JSON-RPC", body: `{"jsonrpc":"2.0","method":`, header: auth,
			wantStatus: http.StatusBadRequest, wantDCode: "rpc_parse_error", wantTenant: "acme",
		},
		{
			name: "body too large", body: toolCall("search", `{"q":"`+strings.Repeat("a", 2<<20)+`"}`), header: auth,
			wantStatus: http.StatusRequestEntityTooLarge, wantCode: "body_too_large", wantDCode: "body_too_large", wantTenant: "acme",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			r := h.post(t, tt.body, tt.header)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", r.status, tt.wantStatus, r.body)
			}
			if h.hits.Load() != before {
				t.Fatal("refused request reached the backend")
			}
			if tt.wantCode != "" && errorCode(r) != tt.wantCode && !(strings.HasSuffix(tt.wantCode, "_") && strings.HasPrefix(errorCode(r), tt.wantCode)) {
				t.Errorf("error code = %q, want %q: %v", errorCode(r), tt.wantCode, r.body)
			}
			if r.body["request_id"] != nil && r.body["request_id"] != r.requestID {
				t.Errorf("request_id = %v, header says %s", r.body["request_id"], r.requestID)
			}
			if tt.wantRule != "" {
				if e := refusalOf(r.body); e["rule_id"] != tt.wantRule || e["policy_id"] != "e2e" {
					t.Errorf("error = %v", r.body)
				}
			}
			ev := h.events(t, r.requestID, event.KindRequest, event.KindDecision)
			dec := ev[event.KindDecision]
			codeOK := dec.Decision.Code == tt.wantDCode || strings.HasSuffix(tt.wantDCode, "_") && strings.HasPrefix(dec.Decision.Code, tt.wantDCode)
			if dec.Decision.Effect != event.EffectDeny || dec.Decision.RuleID != tt.wantRule || !codeOK {
				t.Errorf("decision = %+v", dec.Decision)
			}
			if dec.Tenant != tt.wantTenant || ev[event.KindRequest].Tenant != tt.wantTenant {
				t.Errorf("tenant = %q, want %q", dec.Tenant, tt.wantTenant)
			}
		})
	}
}

func TestMalformedRPCGetsJSONRPCError(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	r := h.post(t, `[{"jsonrpc":"2.0","method":"ping"}]`, http.Header{"Authorization": {"Bearer " + h.token(t)}})
	e, _ := r.body["error"].(map[string]any)
	if r.status != http.StatusBadRequest || r.body["jsonrpc"] != "2.0" || e["code"] != float64(mcp.CodeInvalidRequest) {
		t.Fatalf("status %d body %v", r.status, r.body)
	}
	if data, _ := e["data"].(map[string]any); data["request_id"] != r.requestID || data["code"] != "rpc_invalid_request" {
		t.Errorf("data = %v", e["data"])
	}
}

func TestAuditDownRefusesEverything(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond)
	h.nats.Shutdown()
	h.nats.WaitForShutdown()
	for _, tt := range []struct {
		name   string
		header http.Header
	}{
		{"allowed call", http.Header{"Authorization": {"Bearer " + h.token(t)}}},
		{"unauthenticated call", http.Header{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.post(t, toolCall("search", `{}`), tt.header)
			if r.status != http.StatusServiceUnavailable || errorCode(r) != "audit_unavailable" {
				t.Fatalf("status %d body %v", r.status, r.body)
			}
			if h.hits.Load() != 0 {
				t.Fatal("request forwarded without a record")
			}
		})
	}
}

// Run serves until its context ends, then returns nil and stops listening.
// The context is cancelled only once Run is serving.
func TestRunStopsWithContext(t *testing.T) {
	h := newHarness(t, time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a free port for Run to listen on
	cfg := enforcer.Config{
		Listen: addr, Upstream: "http://127.0.0.1:1", Instance: "run-test",
		PolicyFile: writePolicy(t),
		Identity:   identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: "i", Audience: "a", JWKSFile: filepath.Join(h.dir, "jwks.json")}},
		NATS:       audit.Config{URL: stream.URLs(h.nats.URL())},
	}
	e, err := enforcer.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	poll.Until(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/mcp")
		if err != nil {
			return fmt.Errorf("Run not serving on %s: %w", addr, err)
		}
		resp.Body.Close()
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned before its context ended: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("still listening on %s after Run returned", addr)
	}
}

func writePolicy(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
