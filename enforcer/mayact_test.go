package enforcer_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// A may_act entry naming its issuer admits an actor of that issuer only:
// an actor token from another trusted issuer whose subject is spelled the
// same is someone else. An entry without an issuer names the subject at
// any trusted issuer.
func TestExchangeMayActMatchesIssuer(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t), func(h *harness, c *enforcer.Config) {
		jwks := filepath.Join(h.dir, "jwks.json")
		c.Identity = identity.Config{Issuers: []identity.IssuerConfig{
			{Issuer: "https://idp.test", Audience: "rampart", JWKSFile: jwks},
			{Issuer: "https://agents.test", Audience: "rampart", JWKSFile: jwks},
		}}
	})
	orch := h.caller(t, "svc:orchestrator")
	actorAt := func(iss string) string {
		return h.tokenWith(t, func(c map[string]any) { c["sub"] = "agent:worker"; c["iss"] = iss; delete(c, "act") })
	}
	subjectAllowing := func(entry map[string]any) string {
		return h.tokenWith(t, func(c map[string]any) { c["may_act"] = entry; delete(c, "act") })
	}
	pinned := subjectAllowing(map[string]any{"sub": "agent:worker", "iss": "https://idp.test"})
	anyIssuer := subjectAllowing(map[string]any{"sub": "agent:worker"})
	for _, tc := range []struct {
		name, subject, actor string
		status               int
		code                 string
	}{
		{"same subject, another issuer", pinned, actorAt("https://agents.test"), http.StatusBadRequest, "actor_token_invalid"},
		{"the issuer may_act names", pinned, actorAt("https://idp.test"), http.StatusOK, ""},
		{"no issuer in may_act, any trusted one", anyIssuer, actorAt("https://agents.test"), http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.form(t, enforcer.TokenPath, orch, exchangeForm(tc.subject, tc.actor))
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("answer %d %s, want %d %q", r.status, r.raw, tc.status, tc.code)
			}
			if tc.status != http.StatusOK {
				h.refusedAndRecorded(t, r, tc.status, "invalid_request", tc.code)
			}
		})
	}
}
