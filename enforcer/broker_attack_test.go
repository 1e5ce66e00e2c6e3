package enforcer_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/internal/gatewaytest"
	"github.com/rampart-io/rampart/schema/event"
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
