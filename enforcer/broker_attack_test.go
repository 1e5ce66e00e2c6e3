package enforcer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/internal/gatewaytest"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// reservedSpellings are paths of the enforcer's own /_rampart namespace
// that the enforcer does not serve itself: near misses of the task API
// and the broker that a path-prefix rule (the test policy's task-api
// rule is one) or a case- or compatibility-folding backend would take for
// the enforcer's endpoints.
var reservedSpellings = []string{
	"/_rampart/tasks-admin",
	"/_rampart/tasks.json",
	"/_rampart/tasksdump/t-1/complete",
	"/_RAMPART/tasks/t-1/complete",
	"/_Rampart/token",
	"/_rampart/TOKEN",
	"/_rampart/token/",
	"/_rampart/introspect/x",
	"/_rampart",
	"/_rampart/",
	"/\uff3frampart/tasks", // fullwidth low line: NFKC folds it to "_"
}

// expectReservedRefused checks that the call did not reach the backend,
// was answered want, and is recorded as a not_found refusal.
func expectReservedRefused(t *testing.T, h *harness, path string, status, want int, id string, before int64) {
	t.Helper()
	if h.hits.Load() != before {
		t.Fatalf("%s reached the backend (status %d)", path, status)
	}
	if status != want || id == "" {
		t.Fatalf("%s: status %d, request id %q; want a recorded %d", path, status, id, want)
	}
	d := h.events(t, id, event.KindRequest, event.KindDecision)[event.KindDecision]
	if d.Decision.Effect != event.EffectDeny || d.Decision.Code != "not_found" {
		t.Errorf("%s recorded as %s %q", path, d.Decision.Effect, d.Decision.Code)
	}
}

// Proxy mode: a path in /_rampart that the enforcer does not serve is
// refused, recorded, and never forwarded, whatever a rule allows.
func TestReservedPathsNeverForwarded(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice := bearer(h.token(t))
	for _, p := range reservedSpellings {
		t.Run(p, func(t *testing.T) {
			before := h.hits.Load()
			r := send(t, http.MethodPost, h.url, p, toolCall("search", `{}`), alice)
			expectReservedRefused(t, h, p, r.status, http.StatusNotFound, r.requestID, before)
		})
	}
	// The controls: the same call on the tool path is forwarded, and the
	// task API itself still answers.
	if r := send(t, http.MethodPost, h.url, "/mcp", toolCall("search", `{}`), alice); r.status != 200 {
		t.Fatalf("the control call: %d %v", r.status, r.body)
	}
	if r := declareTask(t, h.url, `{"id":"t-r","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice); r.status != 201 {
		t.Fatalf("the control declaration: %d %v", r.status, r.body)
	}
}

// Forward-auth mode, through real nginx: a check of a /_rampart path is
// refused, so the gateway never passes a spelling of the enforcer's
// endpoints (nor the endpoints themselves) to the backend it guards.
func TestReservedPathsRefusedThroughGateway(t *testing.T) {
	var backendAddr string
	h := newHarness(t, 2*time.Second, forwardAuthMode(enforcer.GatewayNginx), func(h *harness, c *enforcer.Config) {
		backendAddr = strings.TrimPrefix(c.Upstream, "http://")
		c.Upstream = ""
	})
	base := gatewaytest.Nginx(t, gatewaytest.Options{Enforcer: h.addr, Backend: backendAddr, Secret: testGatewaySecret})
	token := h.token(t)
	for _, p := range append([]string{"/_rampart/tasks", "/_rampart/tasks/t-1/complete"}, reservedSpellings[:6]...) {
		t.Run(p, func(t *testing.T) {
			before := h.hits.Load()
			req, _ := http.NewRequest(http.MethodPost, base+p, strings.NewReader(toolCall("search", `{}`)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// nginx's auth_request answers any status but 401 and 403
			// with 500.
			expectReservedRefused(t, h, p, resp.StatusCode, http.StatusInternalServerError, resp.Header.Get(enforcer.HeaderRequestID), before)
		})
	}
	// The control: the gateway's allowed path still reaches the backend.
	req, _ := http.NewRequest(http.MethodPost, base+"/gw/allowed", strings.NewReader(toolCall("search", `{}`)))
	req.Header.Set("Authorization", "Bearer "+token)
	before := h.hits.Load()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || h.hits.Load() != before+1 {
		t.Fatalf("the control: %d", resp.StatusCode)
	}
}

// withBrokerAndTasks is withBroker whose policy also lets acme declare
// and complete tasks.
func withBrokerAndTasks(t *testing.T) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		withBroker(t)(h, c)
		p := filepath.Join(h.dir, "broker-tasks-policy.yaml")
		rule := "  - id: task-api\n    match: 'path.startsWith(\"/_rampart/tasks\") && tenant == \"acme\"'\n    effect: allow\n"
		if err := os.WriteFile(p, []byte(brokerPolicy+rule), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PolicyFile = p
	}
}

// An exchange is a call on behalf of its subject: the subject token is
// held to what the subject's own call would be — not revoked, not under a
// task that ended or that another principal holds — and the credential
// dies by the task's deadline as a forwarded call's does.
func TestExchangeHonoursSubjectsTask(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBrokerAndTasks(t))
	orch := h.caller(t, "svc:orchestrator")
	alice := bearer(h.token(t))
	scope := `"tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]`
	for _, d := range []string{`{"id":"t-ended",` + scope + `}`, `{"id":"t-short","duration":"2m",` + scope + `}`} {
		if r := declareTask(t, h.url, d, alice); r.status != 201 {
			t.Fatalf("declare %s: %d %v", d, r.status, r.body)
		}
	}
	if r := completeTask(t, h.url, "t-ended", alice); r.status != 200 {
		t.Fatalf("complete: %d %v", r.status, r.body)
	}
	kv := h.revocations(t)
	v, _ := json.Marshal(stream.Revocation{Tenant: "acme", JTI: "jti-subject-revoked", Reason: "revoked", RevokedAt: time.Now(), Until: time.Now().Add(time.Hour)})
	if _, err := kv.Put(context.Background(), stream.JTIRevocationKey("jti-subject-revoked"), v); err != nil {
		t.Fatal(err)
	}
	withTask := func(task string) string { return h.tokenWith(t, func(c map[string]any) { c["task"] = task }) }
	for name, tc := range map[string]struct {
		subject string
		status  int
		code    string
	}{
		"subject under an ended task": {withTask("t-ended"), 403, "task_ended"},
		"subject not of the task":     {h.tokenWith(t, func(c map[string]any) { c["sub"] = "user:bob"; c["task"] = "t-short" }), 403, "task_foreign"},
		"subject token revoked":       {h.tokenWith(t, func(c map[string]any) { c["jti"] = "jti-subject-revoked" }), 401, "token_revoked"},
	} {
		t.Run(name, func(t *testing.T) {
			var r brokerReply
			poll.Until(t, 10*time.Second, func() error { // the revocations watch delivers
				r = h.form(t, enforcer.TokenPath, orch, exchangeForm(tc.subject, ""))
				if r.status == 200 {
					return fmt.Errorf("granted %s", r.raw)
				}
				return nil
			})
			if r.status != tc.status || r.code() != tc.code || r.body["access_token"] != nil {
				t.Fatalf("answer %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			d := h.events(t, r.requestID(), event.KindRequest, event.KindDecision)[event.KindDecision].Decision
			if d.Effect != event.EffectDeny || d.Code != tc.code {
				t.Errorf("recorded %+v", d)
			}
		})
	}
	// The rule's ttl is 10m and the subject token lives an hour: the
	// task's deadline, 2m away, bounds the credential.
	r := h.form(t, enforcer.TokenPath, orch, exchangeForm(withTask("t-short"), ""))
	if r.status != 200 {
		t.Fatalf("exchange under a live task: %d %s", r.status, r.raw)
	}
	if in, _ := r.body["expires_in"].(float64); in <= 0 || in > 120 {
		t.Fatalf("expires_in %v, past the task's deadline 120s away", r.body["expires_in"])
	}
}

// An instance whose revocations view NATS cannot confirm mints nothing by
// exchange either (on_stale refuse): it cannot know the subject's task
// has not ended elsewhere meanwhile.
func TestExchangeRefusedWhileRevocationsStale(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	proxy := newCutProxy(t, strings.TrimPrefix(h.nats.URL(), "nats://"))
	b := h.another(t, "enf-b", func(c *enforcer.Config) {
		withBroker(t)(h, c)
		c.NATS.URL = stream.URLs(proxy.url())
		// Spooling, the cut-off instance still records and answers.
		c.NATS.OnUnavailable, c.NATS.Spool = audit.Spool, spool.Config{Dir: t.TempDir()}
		c.Revocations = credential.WatchConfig{MaxStaleness: 500 * time.Millisecond}
	})
	orch, subject := h.caller(t, "svc:orchestrator"), h.token(t)
	post := func() brokerReply {
		req, _ := http.NewRequest(http.MethodPost, b+enforcer.TokenPath, strings.NewReader(exchangeForm(subject, "").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+orch)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := brokerReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
		_ = json.Unmarshal(raw, &r.body)
		return r
	}
	if r := post(); r.status != 200 {
		t.Fatalf("the control exchange at b: %d %s", r.status, r.raw)
	}
	proxy.setCut(true)
	poll.Until(t, 20*time.Second, func() error {
		if r := post(); r.status != 503 || r.code() != "revocations_stale" || r.body["access_token"] != nil {
			return fmt.Errorf("while cut off: %d %s", r.status, r.raw)
		}
		return nil
	})
}

// Attempts on the broker and the task API that the suite did not cover
// yet, each refused with its stable code and never forwarded.
func TestBrokerAndTaskAttemptsRefused(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBrokerAndTasks(t))
	orch := h.caller(t, "svc:orchestrator")
	granted := h.form(t, enforcer.TokenPath, orch, exchangeForm(h.token(t), ""))
	if granted.status != 200 {
		t.Fatalf("the control exchange: %d %s", granted.status, granted.raw)
	}
	minted := granted.body["access_token"].(string)
	alice := bearer(h.token(t))
	twoEncodings := http.Header{"Content-Encoding": {"identity", "gzip"}}
	for k, v := range alice {
		twoEncodings[k] = v
	}
	for name, tc := range map[string]struct {
		method, path, body string
		header             http.Header
		status             int
		code               string
	}{
		// A credential is the backend's, never an identity here.
		"credential as the caller of a tool call": {"POST", "/mcp", toolCall("search", `{}`), bearer(minted), 401, ""},
		"credential as the caller of the broker":  {"POST", enforcer.TokenPath, exchangeForm(h.token(t), "").Encode(), withHeader(bearer(minted), "Content-Type", "application/x-www-form-urlencoded"), 401, ""},
		"credential as the declarer of a task":    {"POST", "/_rampart/tasks", `{"id":"t-c"}`, bearer(minted), 401, ""},
		"HEAD on the broker":                      {"HEAD", enforcer.TokenPath, "", bearer(orch), 405, ""},
		"form charset utf8, not utf-8":            {"POST", enforcer.TokenPath, exchangeForm(h.token(t), "").Encode(), withHeader(bearer(orch), "Content-Type", "application/x-www-form-urlencoded; charset=utf8"), 415, "oauth_content_type"},
		"declaration in two encodings":            {"POST", "/_rampart/tasks", `{"id":"t-e"}`, twoEncodings, 415, "body_encoding_unsupported"},
		"completion in two encodings":             {"POST", "/_rampart/tasks/t-e/complete", "", twoEncodings, 415, "body_encoding_unsupported"},
	} {
		t.Run(name, func(t *testing.T) {
			before := h.hits.Load()
			r := h.send(t, tc.method, tc.path, "", tc.body, tc.header)
			if r.status != tc.status || tc.code != "" && r.code() != tc.code && errorCode(reply{body: r.body}) != tc.code {
				t.Fatalf("answer %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if h.hits.Load() != before {
				t.Fatalf("reached the backend")
			}
			d := h.events(t, r.requestID(), event.KindRequest, event.KindDecision)[event.KindDecision].Decision
			if d.Effect != event.EffectDeny {
				t.Errorf("recorded %+v", d)
			}
		})
	}
}

// Task ids holding NATS subject wildcards and separators name exactly one
// task each: completing "t.*" or ">" ends neither "t.a" nor "t.>".
func TestTaskIDsWithSubjectWildcards(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice := bearer(h.token(t))
	scope := `"tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]`
	ids := []string{"t.*", "t.>", "t.a", ">", "*", "t..a", "t.a."}
	for _, id := range ids {
		if r := declareTask(t, h.url, `{"id":"`+id+`",`+scope+`}`, alice); r.status != 201 {
			t.Fatalf("declare %q: %d %v", id, r.status, r.body)
		}
	}
	for _, id := range []string{"t.*", ">", "*"} {
		if r := completeTask(t, h.url, id, alice); r.status != 200 {
			t.Fatalf("complete %q: %d %v", id, r.status, r.body)
		}
	}
	for _, id := range []string{"t.>", "t.a", "t..a", "t.a."} {
		if r := call(t, h.url, "search", id, alice); r.status != 200 {
			t.Errorf("call under %q after completing the wildcards: %d %v", id, r.status, r.body)
		}
	}
	for _, id := range []string{"t.*", ">", "*"} {
		if r := call(t, h.url, "search", id, alice); r.status != 403 || errorCode(r) != "task_ended" {
			t.Errorf("call under completed %q: %d %v", id, r.status, r.body)
		}
	}
}

// ext_authz, gRPC and HTTP: a check of a /_rampart path is refused as the
// forward-auth one is, whatever the body a rule would allow.
func TestReservedPathsRefusedByExtAuthz(t *testing.T) {
	h := newHarness(t, 2*time.Second, extAuthzModes())
	conn, err := grpc.NewClient(h.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	tok := "Bearer " + h.token(t)
	for _, p := range []string{"/_rampart/tasks-admin", "/_RAMPART/tasks/t-1/complete", "/_rampart/tasks"} {
		t.Run("grpc"+p, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: p,
					Headers: map[string]string{"authorization": tok}, Body: toolCall("search", `{}`)}}}})
			if err != nil {
				t.Fatal(err)
			}
			d := resp.GetDeniedResponse()
			var body map[string]any
			_ = json.Unmarshal([]byte(d.GetBody()), &body)
			if code.Code(resp.GetStatus().GetCode()) == code.Code_OK || d.GetStatus().GetCode() != 404 || refusalOf(body)["code"] != "not_found" {
				t.Fatalf("check of %s: %v", p, resp)
			}
			dec := h.events(t, refusalOf(body)["request_id"], event.KindDecision)[event.KindDecision]
			if dec.Decision.Effect != event.EffectDeny || dec.Decision.Code != "not_found" || dec.Request.Path != p {
				t.Errorf("recorded %+v / %+v", dec.Decision, dec.Request)
			}
		})
		t.Run("http"+p, func(t *testing.T) {
			r := h.send(t, http.MethodPost, "/_rampart/ext_authz"+p, "", toolCall("search", `{}`),
				http.Header{"Authorization": {tok}, enforcer.HeaderGatewaySecret: {testGatewaySecret}})
			if r.status != 404 || errorCode(reply{body: r.body}) != "not_found" {
				t.Fatalf("check of %s: %d %s", p, r.status, r.raw)
			}
		})
	}
}
