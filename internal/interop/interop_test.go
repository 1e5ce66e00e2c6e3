//lint:file-ignore SA1019 sampling, roots and logging are deprecated as of protocol revision 2026-07-28 but still in use: the suite exercises them.

package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// everything starts the reference server on a free loopback port and
// returns its MCP endpoint. scripts/deps.sh installs it from npm.
func everything(t *testing.T) string {
	t.Helper()
	script := os.Getenv("RAMPART_MCP_EVERYTHING")
	if script == "" {
		_, file, _, _ := runtime.Caller(0)
		script = filepath.Join(filepath.Dir(file), "../../.cache/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	}
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(script); err != nil || serr != nil {
		reason := "node and @modelcontextprotocol/server-everything are needed (scripts/deps.sh installs them)"
		if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(node, script, "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprint("PORT=", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprint("127.0.0.1:", port)
	poll.Until(t, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return fmt.Errorf("server-everything not listening on %s: %w", addr, err)
		}
		return c.Close()
	})
	return "http://" + addr + "/mcp"
}

// rampart serves an enforcer in proxy mode in front of upstream, as
// `rampart enforcer` does, deciding with the interop policy, and returns
// its MCP endpoint and a token.
func rampart(t *testing.T, natsURL, upstream string) (endpoint, token string) {
	return rampartWith(t, natsURL, upstream, "testdata/policy.yaml")
}

// rampartWith is rampart deciding with the policy file policy.
func rampartWith(t *testing.T, natsURL, upstream, policy string) (endpoint, token string) {
	t.Helper()
	dir := t.TempDir()
	iss, err := workload.NewIssuer("https://idp.interop.test", "rampart")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := iss.JWKS()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg enforcer.Config
	cfg.Instance, cfg.Upstream, cfg.NATS.URL = "interop", strings.TrimSuffix(upstream, "/mcp"), stream.URLs(natsURL)
	cfg.PolicyFile = policy
	cfg.Identity.Issuer, cfg.Identity.Audience, cfg.Identity.JWKSFile = iss.URL, iss.Audience, filepath.Join(dir, "jwks.json")
	e, err := enforcer.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, enforcer.Listeners{HTTP: ln}) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })
	token, err = iss.Token(workload.Caller{Tenant: "acme", Principal: "user:alice", Actors: []string{"agent:planner"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + ln.Addr().String() + "/mcp", token
}

// bearer adds the token to every request the SDK makes.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func connect(ctx context.Context, t *testing.T, endpoint, token string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "rampart-interop", Version: "v1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "sampled by the client"}, Model: "interop", Role: "assistant"}, nil
		},
	})
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}
	if token != "" {
		tr.HTTPClient = &http.Client{Transport: bearer{token}}
	}
	cs, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	return cs
}

// step is one exchange of the protocol; its result is compared, as JSON,
// between the direct session and the one through Rampart.
type step struct {
	name   string
	method string // the JSON-RPC method Rampart must record
	tool   string
	denied bool // through Rampart the step is refused by policy
	run    func(ctx context.Context, cs *mcp.ClientSession) (any, error)
}

var steps = []step{
	{"tools/list", "tools/list", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		r, err := cs.ListTools(ctx, nil)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, tl := range r.Tools {
			names = append(names, tl.Name)
		}
		return names, nil
	}},
	{"tools/call echo", "tools/call", "echo", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return callTool(ctx, cs, "echo", map[string]any{"message": "through the boundary"})
	}},
	{"tools/call get-sum", "tools/call", "get-sum", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return callTool(ctx, cs, "get-sum", map[string]any{"a": 2, "b": 40})
	}},
	{"sampling: server asks, client answers", "tools/call", "trigger-sampling-request", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return callTool(ctx, cs, "trigger-sampling-request", map[string]any{"prompt": "say hi", "maxTokens": 10})
	}},
	{"prompts/list", "prompts/list", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		r, err := cs.ListPrompts(ctx, nil)
		if err != nil {
			return nil, err
		}
		return len(r.Prompts), nil
	}},
	{"prompts/get", "prompts/get", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		r, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "simple-prompt"})
		if err != nil {
			return nil, err
		}
		return r.Messages, nil
	}},
	{"resources/list", "resources/list", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		r, err := cs.ListResources(ctx, nil)
		if err != nil {
			return nil, err
		}
		return len(r.Resources), nil
	}},
	{"resources/read", "resources/read", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://resource/static/document/architecture.md"})
		if err != nil {
			return nil, err
		}
		return len(r.Contents), nil
	}},
	{"logging/setLevel", "logging/setLevel", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return nil, cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"})
	}},
	{"ping", "ping", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return nil, cs.Ping(ctx, nil)
	}},
	{"tools/call get-env (denied)", "tools/call", "get-env", true, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return callTool(ctx, cs, "get-env", map[string]any{})
	}},
	{"ping after the denial: the session lives", "ping", "", false, func(ctx context.Context, cs *mcp.ClientSession) (any, error) {
		return nil, cs.Ping(ctx, nil)
	}},
}

func callTool(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) (any, error) {
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, err
	}
	return r.Content, nil
}

// TestGoSDKClientAgainstServerEverything drives every step directly and
// through Rampart: the results agree, a denied step is a JSON-RPC error
// that leaves the session alive, and each exchange through Rampart is
// recorded with its method, tool and effect.
func TestGoSDKClientAgainstServerEverything(t *testing.T) {
	upstream := everything(t)
	ns := natstest.Run(t)
	endpoint, token := rampart(t, ns.URL(), upstream)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	direct := connect(ctx, t, upstream, "")
	defer direct.Close()
	through := connect(ctx, t, endpoint, token)
	if d, r := direct.InitializeResult().ProtocolVersion, through.InitializeResult().ProtocolVersion; d != r {
		t.Errorf("protocol revision %s through Rampart, %s directly", r, d)
	} else {
		t.Logf("protocol revision %s", r)
	}
	for _, s := range steps {
		want, werr := s.run(ctx, direct)
		got, gerr := s.run(ctx, through)
		if werr != nil {
			t.Fatalf("%s directly: %v", s.name, werr)
		}
		if s.denied {
			var rpcErr *jsonrpc.Error
			if !errors.As(gerr, &rpcErr) || rpcErr.Code != -32001 || !strings.Contains(string(rpcErr.Data), `"policy_denied"`) {
				t.Errorf("%s: through Rampart %v, want a JSON-RPC policy_denied error", s.name, gerr)
			}
			continue
		}
		if gerr != nil {
			t.Errorf("%s: through Rampart: %v", s.name, gerr)
			continue
		}
		if w, g := jsonOf(t, want), jsonOf(t, got); w != g {
			t.Errorf("%s: through Rampart %s, directly %s", s.name, g, w)
		}
	}
	if err := through.Close(); err != nil { // DELETE: the session ends
		t.Errorf("close: %v", err)
	}

	// The record: every step's decision with its method, tool and effect,
	// the client's answer to the server's sampling request among them.
	decisions := recorded(ctx, t, ns.URL())
	for _, s := range steps {
		effect := event.EffectAllow
		if s.denied {
			effect = event.EffectDeny
		}
		if !hasDecision(decisions, func(r *event.Request, d *event.Decision) bool {
			return r.RPCMethod == s.method && r.Tool == s.tool && d.Effect == effect
		}) {
			t.Errorf("%s: no %s decision for %s %s recorded", s.name, effect, s.method, s.tool)
		}
	}
	serverAsked := false
	for _, e := range decisions {
		serverAsked = serverAsked || e.Kind == event.KindServerRequest && e.Request.RPCMethod == "sampling/createMessage"
	}
	if !serverAsked {
		t.Error("the server's sampling request was not recorded")
	}
	for name, match := range map[string]func(*event.Request, *event.Decision) bool{
		"initialize": func(r *event.Request, d *event.Decision) bool {
			return r.RPCMethod == "initialize" && d.Effect == event.EffectAllow
		},
		"the client's sampling answer": func(r *event.Request, d *event.Decision) bool {
			return r.RPCKind == "response" && d.Effect == event.EffectAllow
		},
		"the session's end (DELETE)": func(r *event.Request, d *event.Decision) bool {
			return r.Method == "DELETE" && d.Effect == event.EffectAllow
		},
	} {
		if !hasDecision(decisions, match) {
			t.Errorf("no decision recorded for %s", name)
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recorded reads every decision and server request event in the stream.
func recorded(_ context.Context, t *testing.T, natsURL string) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, e := range natstest.AllEvents(t, natsURL) {
		if e.Kind == event.KindDecision || e.Kind == event.KindServerRequest {
			out = append(out, e)
		}
	}
	return out
}

func hasDecision(events []*event.Event, match func(*event.Request, *event.Decision) bool) bool {
	for _, e := range events {
		if e.Kind == event.KindDecision && e.Request != nil && e.Decision != nil && match(e.Request, e.Decision) {
			return true
		}
	}
	return false
}

// TestShippedPolicyServesAStandardClient: the example policy operators
// start from lets a standard client open a session, discover, keep its
// standalone stream and end the session, and denies the rest.
func TestShippedPolicyServesAStandardClient(t *testing.T) {
	upstream := everything(t)
	ns := natstest.Run(t)
	endpoint, token := rampartWith(t, ns.URL(), upstream, "../../enforcer/policy.example.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := connect(ctx, t, endpoint, token)
	for name, call := range map[string]func() error{
		"tools/list":     func() error { _, err := cs.ListTools(ctx, nil); return err },
		"prompts/list":   func() error { _, err := cs.ListPrompts(ctx, nil); return err },
		"resources/list": func() error { _, err := cs.ListResources(ctx, nil); return err },
		"ping":           func() error { return cs.Ping(ctx, nil) },
	} {
		if err := call(); err != nil {
			t.Errorf("%s under the example policy: %v", name, err)
		}
	}
	var rpcErr *jsonrpc.Error
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get-env", Arguments: map[string]any{}}); !errors.As(err, &rpcErr) {
		t.Errorf("a tool the example policy does not name: %v", err)
	}
	if err := cs.Ping(ctx, nil); err != nil {
		t.Errorf("ping after the denial: %v", err)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	decisions := recorded(ctx, t, ns.URL())
	for _, want := range []struct{ method, rpc string }{{"GET", ""}, {"DELETE", ""}, {"POST", "notifications/initialized"}} {
		if !hasDecision(decisions, func(r *event.Request, d *event.Decision) bool {
			return r.Method == want.method && r.RPCMethod == want.rpc && d.Effect == event.EffectAllow
		}) {
			t.Errorf("no allow recorded for %s %s", want.method, want.rpc)
		}
	}
}
