package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// TestMultipleIssuers checks that each issuer is held to its own keys,
// algorithms, audience, required claims and clock skew, so a key or a
// token shape trusted for one issuer is worthless for another.
func TestMultipleIssuers(t *testing.T) {
	const (
		corp  = "https://login.corp.example"
		spire = "https://spire.example"
	)
	corpRSA, corpEd := rsaSigner(t, "corp-rsa"), edSigner(t, "corp-ed")
	spireKey := ecSigner(t, "spire-1")
	srv := newJWKSServer(t, jwksJSON(t, spireKey))
	cfg := identity.Config{Issuers: []identity.IssuerConfig{
		{Issuer: corp, Audience: "rampart", JWKSFile: writeJWKS(t, corpRSA, corpEd), Algorithms: []string{"RS256"}, RequiredClaims: []string{"tenant"}},
		{Issuer: spire, Audience: "mcp", JWKSURL: srv.URL, Algorithms: []string{"ES256"}, ClockSkew: 2 * time.Second, Tenant: "acme"},
	}}
	v, err := identity.New(context.Background(), cfg, identity.WithClock(newClock().Now))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	corpClaims := func(edit func(m map[string]any)) map[string]any {
		return claims(func(m map[string]any) { m["iss"] = corp; edit(m) })
	}
	spireClaims := func(edit func(m map[string]any)) map[string]any {
		return claims(func(m map[string]any) {
			m["iss"], m["aud"], m["sub"] = spire, "mcp", "spiffe://spire.example/ns/agents/sa/planner"
			delete(m, "tenant")
			edit(m)
		})
	}
	none := func(map[string]any) {}
	tests := []struct {
		name  string
		token string
		want  identity.Code
	}{
		{name: "corp RS256", token: sign(t, jwa.RS256, corpRSA, corpClaims(none), nil)},
		{name: "spire ES256", token: sign(t, jwa.ES256, spireKey, spireClaims(none), nil)},
		{name: "corp key, but EdDSA is not a corp algorithm", token: sign(t, jwa.EdDSA, corpEd, corpClaims(none), nil), want: identity.TokenAlgorithm},
		{name: "corp requires tenant", token: sign(t, jwa.RS256, corpRSA, corpClaims(func(m map[string]any) { delete(m, "tenant") }), nil), want: identity.TokenClaims},
		{name: "spire token naming another tenant", token: sign(t, jwa.ES256, spireKey, spireClaims(func(m map[string]any) { m["tenant"] = "globex" }), nil), want: identity.TokenTenantForeign},
		{name: "spire token naming its own tenant", token: sign(t, jwa.ES256, spireKey, spireClaims(func(m map[string]any) { m["tenant"] = "acme" }), nil)},
		{name: "spire token for the corp audience", token: sign(t, jwa.ES256, spireKey, spireClaims(func(m map[string]any) { m["aud"] = "rampart" }), nil), want: identity.TokenAudience},
		{name: "spire skew is 2s", token: sign(t, jwa.ES256, spireKey, spireClaims(func(m map[string]any) { m["exp"] = t0.Add(-5 * time.Second).Unix() }), nil), want: identity.TokenExpired},
		{name: "corp skew is the default", token: sign(t, jwa.RS256, corpRSA, corpClaims(func(m map[string]any) { m["exp"] = t0.Add(-5 * time.Second).Unix() }), nil)},
		{name: "spire iss with a corp key id", token: sign(t, jwa.ES256, signer{kid: "corp-rsa", priv: spireKey.priv}, spireClaims(none), nil), want: identity.TokenUnknownKey},
		{name: "corp iss signed by spire", token: sign(t, jwa.RS256, signer{kid: "spire-1", priv: corpRSA.priv}, corpClaims(none), nil), want: identity.TokenUnknownKey},
		{name: "unknown issuer", token: sign(t, jwa.RS256, corpRSA, corpClaims(func(m map[string]any) { m["iss"] = "https://other" }), nil), want: identity.TokenIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.VerifyToken(context.Background(), tt.token)
			if tt.want != "" {
				checkCode(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Issuer == spire && id.SPIFFEID == "" {
				t.Errorf("SPIFFE ID not set: %+v", id)
			}
		})
	}
}
