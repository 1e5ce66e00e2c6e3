package enforcer_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// testGatewaySecret is the forward_auth secret the test gateways send.
const testGatewaySecret = "test-gateway-secret-0123456789"

// forwardAuthMode serves forward_auth (only) for gateway, with the test
// secret.
func forwardAuthMode(gateway string) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		c.Modes = []string{enforcer.ModeForwardAuth}
		c.ForwardAuth.Gateway = gateway
		c.ForwardAuth.SecretFile = filepath.Join(h.dir, "gateway.secret")
		if err := os.WriteFile(c.ForwardAuth.SecretFile, []byte(testGatewaySecret+"\n"), 0o600); err != nil {
			panic(err)
		}
	}
}

// spoofedOrigins sends, through a real gateway, requests whose own headers
// claim to be the original request, in every spelling a gateway might pass
// through: none may reach the backend, and the record must say what was
// really asked, never the spoofed line.
func spoofedOrigins(t *testing.T, h *harness, base, gateway string) {
	allowed := [][2]string{{"X-Original-Uri", "/gw/allowed"}, {"X-Original-Method", "POST"}, {"X-Original-Host", "tools.test"}}
	spell := func(kv [][2]string, f func(string) string) [][2]string {
		out := make([][2]string, len(kv))
		for i, p := range kv {
			out[i] = [2]string{f(p[0]), p[1]}
		}
		return out
	}
	forwarded := spell(allowed, func(k string) string { return strings.Replace(k, "Original", "Forwarded", 1) })
	cases := map[string][][2]string{
		"x-original":             allowed,
		"x-original lower":       spell(allowed, strings.ToLower),
		"x-original upper":       spell(allowed, strings.ToUpper),
		"x-original underscore":  spell(allowed, func(k string) string { return strings.ReplaceAll(k, "-", "_") }),
		"x-forwarded":            forwarded,
		"x-forwarded lower":      spell(forwarded, strings.ToLower),
		"x-forwarded underscore": spell(forwarded, func(k string) string { return strings.ReplaceAll(k, "-", "_") }),
		"x-original-url":         {{"X-Original-URL", "/gw/allowed"}},
		"x-rewrite-url":          {{"X-Rewrite-URL", "/gw/allowed"}},
		"method override":        {{"X-HTTP-Method-Override", "POST"}},
		"rampart header":         {{"X-Rampart-Task", "t-1"}},
		"rampart tenant":         {{"X-Rampart-Tenant", "globex"}},
		"gateway secret":         {{enforcer.HeaderGatewaySecret, "guess"}},
	}
	for name, headers := range cases {
		t.Run(name, func(t *testing.T) {
			before := h.hits.Load()
			req, _ := http.NewRequest(http.MethodDelete, base+"/admin/users?id=1", nil)
			req.Header.Set("Authorization", "Bearer "+h.token(t))
			for _, kv := range headers {
				req.Header[kv[0]] = []string{kv[1]} // as spelled, not canonicalised
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || h.hits.Load() != before {
				t.Fatalf("%s: status %d, backend hits %d: %s", gateway, resp.StatusCode, h.hits.Load()-before, body)
			}
			id := resp.Header.Get(enforcer.HeaderRequestID)
			if id == "" {
				return // nginx answers refusals itself, without the id
			}
			dec := h.events(t, id, event.KindDecision)[event.KindDecision]
			if dec.Decision.Effect != event.EffectDeny || dec.Request.Path == "/gw/allowed" {
				t.Errorf("recorded %s %s: %+v", dec.Request.Method, dec.Request.Path, dec.Decision)
			}
		})
	}
}
