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

// TestGateways runs real nginx and Caddy in front of the enforcer's
// forward-auth endpoint: allowed requests reach the backend with the
// enforcer's headers, denied ones never do, and both are recorded.
func TestGateways(t *testing.T) {
	gateways := []struct {
		name  string
		start func(testing.TB, gatewaytest.Options) string
	}{
		{"nginx", gatewaytest.Nginx},
		{"caddy", gatewaytest.Caddy},
	}
	for _, gw := range gateways {
		t.Run(gw.name, func(t *testing.T) {
			var backendAddr string
			h := newHarness(t, 2*time.Second, forwardAuthMode(gw.name), func(h *harness, c *enforcer.Config) {
				backendAddr = strings.TrimPrefix(c.Upstream, "http://")
				c.Upstream = ""
			})
			base := gw.start(t, gatewaytest.Options{Enforcer: h.addr, Backend: backendAddr, Secret: testGatewaySecret})
			send := func(path, token string) (*http.Response, string) {
				req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(toolCall("search", `{}`)))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}

			t.Run("allowed", func(t *testing.T) {
				before := h.hits.Load()
				resp, body := send("/gw/allowed", h.token(t))
				if resp.StatusCode != http.StatusOK || h.hits.Load() != before+1 {
					t.Fatalf("status %d, hits %d: %s", resp.StatusCode, h.hits.Load()-before, body)
				}
				up := h.lastUpstream()
				if up.Values(enforcer.HeaderTenant)[0] != "acme" || len(up.Values(enforcer.HeaderTenant)) != 1 ||
					up.Get(enforcer.HeaderSubject) != "user:alice" || up.Get(enforcer.HeaderRequestID) == "" {
					t.Fatalf("backend headers = %v", up)
				}
				ev := h.events(t, up.Get(enforcer.HeaderRequestID), event.KindRequest, event.KindDecision)
				dec := ev[event.KindDecision]
				if dec.Decision.Effect != event.EffectAllow || dec.Decision.RuleID != "allow-gateway-path" ||
					dec.Request.Method != http.MethodPost || dec.Request.Path != "/gw/allowed" || dec.Tenant != "acme" {
					t.Errorf("decision event = %+v / %+v", dec.Decision, dec.Request)
				}
			})
			t.Run("denied", func(t *testing.T) {
				before := h.hits.Load()
				resp, body := send("/gw/denied", h.token(t))
				if resp.StatusCode != http.StatusForbidden || h.hits.Load() != before {
					t.Fatalf("status %d, hits %d: %s", resp.StatusCode, h.hits.Load()-before, body)
				}
				id := resp.Header.Get(enforcer.HeaderRequestID)
				if id == "" {
					t.Fatalf("no request id on the refusal: %v", resp.Header)
				}
				dec := h.events(t, id, event.KindDecision)[event.KindDecision]
				if dec.Decision.Effect != event.EffectDeny || dec.Decision.RuleID != "default-deny" || dec.Request.Path != "/gw/denied" {
					t.Errorf("decision event = %+v / %+v", dec.Decision, dec.Request)
				}
			})
			t.Run("spoofed", func(t *testing.T) { spoofedOrigins(t, h, base, gw.name) })
			t.Run("unauthenticated", func(t *testing.T) {
				before := h.hits.Load()
				resp, body := send("/gw/allowed", "")
				if resp.StatusCode != http.StatusUnauthorized || h.hits.Load() != before {
					t.Fatalf("status %d, hits %d: %s", resp.StatusCode, h.hits.Load()-before, body)
				}
			})
		})
	}
}
