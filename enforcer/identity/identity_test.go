package identity_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/schema/event"
)

// testIssuer is a single-issuer Verifier over a JWKS file holding an RSA,
// an EC and an Ed25519 key, on a fake clock.
type testIssuer struct {
	rsa, ec, ed signer
	clock       *clock
	v           *identity.Verifier
}

func newTestIssuer(t *testing.T, edit func(c *identity.Config)) *testIssuer {
	t.Helper()
	ti := &testIssuer{rsa: rsaSigner(t, "rsa-1"), ec: ecSigner(t, "ec-1"), ed: edSigner(t, "ed-1"), clock: newClock()}
	cfg := identity.Config{IssuerConfig: identity.IssuerConfig{
		Issuer: issuer, Audience: audience,
		JWKSFile:       writeJWKS(t, ti.rsa, ti.ec, ti.ed),
		RequiredClaims: []string{"tenant"},
	}}
	if edit != nil {
		edit(&cfg)
	}
	v, err := identity.New(context.Background(), cfg, identity.WithClock(ti.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	ti.v = v
	return ti
}

// checkCode fails unless err carries want, by CodeOf and by errors.Is.
func checkCode(t *testing.T, err error, want identity.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %s", want)
	}
	if got := identity.CodeOf(err); got != want {
		t.Fatalf("code = %s, want %s (%v)", got, want, err)
	}
	if !errors.Is(err, &identity.Error{Code: want}) {
		t.Errorf("errors.Is does not match the code")
	}
}

func TestVerifyTokenAccepts(t *testing.T) {
	ti := newTestIssuer(t, nil)
	tests := []struct {
		name       string
		token      func() string
		wantChain  []string
		wantMayAct []event.Actor
		check      func(t *testing.T, id *identity.Identity)
	}{
		{
			name:  "RS256",
			token: func() string { return sign(t, jwa.RS256, ti.rsa, claims(nil), nil) },
			check: func(t *testing.T, id *identity.Identity) {
				if id.Subject != "user:alice" || id.Issuer != issuer || id.Tenant != "acme" || id.SessionID != "sess-1" || id.SPIFFEID != "" {
					t.Errorf("identity = %+v", id)
				}
				if id.CurrentActor() != "user:alice" {
					t.Errorf("current actor = %q, want the subject", id.CurrentActor())
				}
			},
		},
		{
			name: "ES256 JWT-SVID with task",
			token: func() string {
				return sign(t, jwa.ES256, ti.ec, claims(func(m map[string]any) {
					m["sub"] = "spiffe://acme.example/agent/planner"
					m["task"] = "task-9"
				}), nil)
			},
			check: func(t *testing.T, id *identity.Identity) {
				if id.SPIFFEID != "spiffe://acme.example/agent/planner" || id.TaskID != "task-9" {
					t.Errorf("identity = %+v", id)
				}
			},
		},
		{name: "EdDSA", token: func() string { return sign(t, jwa.EdDSA, ti.ed, claims(nil), nil) }},
		{
			name: "no typ",
			token: func() string {
				return sign(t, jwa.EdDSA, ti.ed, claims(nil), func(h map[string]any) { delete(h, "typ") })
			},
		},
		{
			name: "typ at+jwt",
			token: func() string {
				return sign(t, jwa.EdDSA, ti.ed, claims(nil), func(h map[string]any) { h["typ"] = "at+jwt" })
			},
		},
		{
			name: "typ application/AT+JWT",
			token: func() string {
				return sign(t, jwa.EdDSA, ti.ed, claims(nil), func(h map[string]any) { h["typ"] = "application/AT+JWT" })
			},
		},
		{
			name: "unknown header parameters are ignored",
			token: func() string {
				return sign(t, jwa.EdDSA, ti.ed, claims(nil), func(h map[string]any) { h["x5t"] = "abc" })
			},
		},
		{
			name: "aud as a list",
			token: func() string {
				return sign(t, jwa.EdDSA, ti.ed, claims(func(m map[string]any) { m["aud"] = []string{"other", audience} }), nil)
			},
		},
		{
			name: "expired within skew",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) { m["exp"] = t0.Add(-5 * time.Second).Unix() }), nil)
			},
		},
		{
			name: "nbf and iat within skew",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) {
					m["nbf"] = t0.Add(10 * time.Second).Unix()
					m["iat"] = t0.Add(10 * time.Second).Unix()
				}), nil)
			},
		},
		{
			// user:alice delegated to agent:planner, which delegated to
			// agent:sub, which is calling now: the outermost act is current.
			name: "act chain, earliest actor first",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) {
					m["act"] = map[string]any{"sub": "agent:sub", "act": map[string]any{"sub": "agent:planner"}}
				}), nil)
			},
			wantChain: []string{"agent:planner", "agent:sub"},
			check: func(t *testing.T, id *identity.Identity) {
				if id.CurrentActor() != "agent:sub" {
					t.Errorf("current actor = %q, want agent:sub", id.CurrentActor())
				}
			},
		},
		{
			name: "may_act allows the current actor",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) {
					m["act"] = map[string]any{"sub": "agent:sub", "iss": "https://agents", "act": map[string]any{"sub": "agent:planner"}}
					m["may_act"] = map[string]any{"sub": "agent:sub", "iss": "https://agents"}
				}), nil)
			},
			wantChain:  []string{"agent:planner", "agent:sub"},
			wantMayAct: []event.Actor{{Subject: "agent:sub", Issuer: "https://agents"}},
		},
		{
			name: "may_act list",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) {
					m["act"] = map[string]any{"sub": "agent:b"}
					m["may_act"] = []any{map[string]any{"sub": "agent:a"}, map[string]any{"sub": "agent:b"}}
				}), nil)
			},
			wantChain:  []string{"agent:b"},
			wantMayAct: []event.Actor{{Subject: "agent:a"}, {Subject: "agent:b"}},
		},
		{
			name: "may_act without act is recorded",
			token: func() string {
				return sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) { m["may_act"] = map[string]any{"sub": "agent:a"} }), nil)
			},
			wantMayAct: []event.Actor{{Subject: "agent:a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ti.v.VerifyToken(context.Background(), tt.token())
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			var chain []string
			for _, a := range id.Chain {
				chain = append(chain, a.Subject)
			}
			if !slices.Equal(chain, tt.wantChain) {
				t.Errorf("chain = %v, want %v", chain, tt.wantChain)
			}
			if !slices.Equal(id.MayAct, tt.wantMayAct) {
				t.Errorf("may_act = %v, want %v", id.MayAct, tt.wantMayAct)
			}
			if tt.check != nil {
				tt.check(t, id)
			}
		})
	}
}

// TestVerifyTokenRejects is the negative corpus: every way a token is
// refused, with the stable code it must be refused with.
func TestVerifyTokenRejects(t *testing.T) {
	ti := newTestIssuer(t, nil)
	good := sign(t, jwa.RS256, ti.rsa, claims(nil), nil)
	goodParts := strings.Split(good, ".")

	// The RSA public key as PEM: what an attacker signs HS256 with, hoping
	// the verifier uses the "key bytes" as an HMAC secret.
	der, err := x509.MarshalPKIXPublicKey(ti.rsa.pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	stranger := rsaSigner(t, "rsa-1") // right kid, wrong key

	rs := func(edit func(m map[string]any)) string { return sign(t, jwa.RS256, ti.rsa, claims(edit), nil) }
	hdr := func(edit func(h map[string]any)) string { return sign(t, jwa.RS256, ti.rsa, claims(nil), edit) }
	rawHeader := func(header string) string {
		return rawSign(t, jwa.RS256, ti.rsa.priv, header, mustJSON(t, claims(nil)))
	}
	rawClaims := func(payload string) string {
		return rawSign(t, jwa.RS256, ti.rsa.priv, `{"alg":"RS256","kid":"rsa-1"}`, payload)
	}
	deep := func(n int) map[string]any {
		var act map[string]any
		for i := range n {
			next := map[string]any{"sub": "agent:" + string(rune('a'+i))}
			if act != nil {
				next["act"] = act
			}
			act = next
		}
		return act
	}

	tests := []struct {
		name  string
		token string
		want  identity.Code
	}{
		// Algorithms (RFC 8725 §2.1, §3.1).
		{"alg none", enc([]byte(`{"alg":"none","kid":"rsa-1","typ":"JWT"}`)) + "." + enc([]byte(mustJSON(t, claims(nil)))) + ".", identity.TokenAlgorithm},
		{"alg None", enc([]byte(`{"alg":"None","kid":"rsa-1"}`)) + "." + goodParts[1] + ".", identity.TokenAlgorithm},
		{"HS256 with the RSA public key PEM as secret", rawSign(t, jwa.HS256, pemBytes, `{"alg":"HS256","kid":"rsa-1","typ":"JWT"}`, mustJSON(t, claims(nil))), identity.TokenAlgorithm},
		{"HS256 with the JWK modulus as secret", rawSign(t, jwa.HS256, ti.rsa.pub.(*rsa.PublicKey).N.Bytes(), `{"alg":"HS256","kid":"rsa-1"}`, mustJSON(t, claims(nil))), identity.TokenAlgorithm},
		{"RS384 not in the allow-list", rawSign(t, jwa.RS384, ti.rsa.priv, `{"alg":"RS384","kid":"rsa-1"}`, mustJSON(t, claims(nil))), identity.TokenAlgorithm},
		{"ES256 with the kid of the RSA key", sign(t, jwa.ES256, signer{kid: "rsa-1", priv: ti.ec.priv}, claims(nil), nil), identity.TokenAlgorithm},
		{"RS256 with the kid of the EC key", sign(t, jwa.RS256, signer{kid: "ec-1", priv: ti.rsa.priv}, claims(nil), nil), identity.TokenAlgorithm},
		{"no alg", rawHeader(`{"kid":"rsa-1"}`), identity.TokenAlgorithm},

		// Keys.
		{"unknown kid", sign(t, jwa.RS256, rsaSigner(t, "rsa-2"), claims(nil), nil), identity.TokenUnknownKey},
		{"known kid, wrong key", sign(t, jwa.RS256, stranger, claims(nil), nil), identity.TokenSignature},
		{"no kid", hdr(func(h map[string]any) { delete(h, "kid") }), identity.TokenHeader},
		{"kid path traversal", hdr(func(h map[string]any) { h["kid"] = "../../../../dev/null" }), identity.TokenHeader},
		{"kid SQL injection", hdr(func(h map[string]any) { h["kid"] = "x' UNION SELECT 'key' --" }), identity.TokenHeader},
		{"kid with NUL", hdr(func(h map[string]any) { h["kid"] = "rsa-1\x00" }), identity.TokenHeader},
		{"kid too long", hdr(func(h map[string]any) { h["kid"] = strings.Repeat("k", 300) }), identity.TokenHeader},
		{"kid not a string", hdr(func(h map[string]any) { h["kid"] = 1 }), identity.TokenHeader},

		// Token-supplied keys are never followed (RFC 8725 §3.10).
		{"jku", hdr(func(h map[string]any) { h["jku"] = "https://evil.example/jwks.json" }), identity.TokenHeader},
		{"x5u", hdr(func(h map[string]any) { h["x5u"] = "https://evil.example/cert.pem" }), identity.TokenHeader},
		{"x5c", hdr(func(h map[string]any) { h["x5c"] = []string{"MIIB"} }), identity.TokenHeader},
		{"embedded jwk", hdr(func(h map[string]any) { h["jwk"] = json.RawMessage(jwksJSON(t, ti.rsa)) }), identity.TokenHeader},
		{"crit", hdr(func(h map[string]any) { h["crit"] = []string{"exp"} }), identity.TokenHeader},
		{"b64 false", hdr(func(h map[string]any) { h["b64"] = false }), identity.TokenHeader},
		{"cty JWT (nested)", hdr(func(h map[string]any) { h["cty"] = "JWT" }), identity.TokenHeader},
		{"typ secevent+jwt", hdr(func(h map[string]any) { h["typ"] = "secevent+jwt" }), identity.TokenHeader},
		{"typ JOSE+JSON", hdr(func(h map[string]any) { h["typ"] = "JOSE+JSON" }), identity.TokenHeader},
		{"typ not a string", hdr(func(h map[string]any) { h["typ"] = true }), identity.TokenHeader},

		// Signature.
		{"signature of another token", goodParts[0] + "." + goodParts[1] + "." + strings.Split(rs(func(m map[string]any) { m["sub"] = "bob" }), ".")[2], identity.TokenSignature},
		{"payload swapped", goodParts[0] + "." + enc([]byte(mustJSON(t, claims(func(m map[string]any) { m["sub"] = "admin" })))) + "." + goodParts[2], identity.TokenSignature},
		{"empty signature", goodParts[0] + "." + goodParts[1] + ".", identity.TokenSignature},

		// Claims.
		{"wrong issuer", rs(func(m map[string]any) { m["iss"] = "https://evil.example" }), identity.TokenIssuer},
		{"no issuer", rs(func(m map[string]any) { delete(m, "iss") }), identity.TokenIssuer},
		{"issuer not a string", rs(func(m map[string]any) { m["iss"] = []string{issuer} }), identity.TokenIssuer},
		{"wrong audience", rs(func(m map[string]any) { m["aud"] = "other" }), identity.TokenAudience},
		{"no audience", rs(func(m map[string]any) { delete(m, "aud") }), identity.TokenAudience},
		{"expired beyond skew", rs(func(m map[string]any) { m["exp"] = t0.Add(-time.Minute).Unix() }), identity.TokenExpired},
		{"nbf in the future", rs(func(m map[string]any) { m["nbf"] = t0.Add(time.Minute).Unix() }), identity.TokenNotYetValid},
		{"iat in the future", rs(func(m map[string]any) { m["iat"] = t0.Add(time.Minute).Unix() }), identity.TokenNotYetValid},
		{"no exp", rs(func(m map[string]any) { delete(m, "exp") }), identity.TokenClaims},
		{"exp not a number", rs(func(m map[string]any) { m["exp"] = "tomorrow" }), identity.TokenClaims},
		{"no sub", rs(func(m map[string]any) { delete(m, "sub") }), identity.TokenClaims},
		{"required claim tenant missing", rs(func(m map[string]any) { delete(m, "tenant") }), identity.TokenClaims},
		{"tenant not a string", rs(func(m map[string]any) { m["tenant"] = 7 }), identity.TokenClaims},
		{"tenant empty", rs(func(m map[string]any) { m["tenant"] = "" }), identity.TokenClaims},
		{"tenant null", rs(func(m map[string]any) { m["tenant"] = nil }), identity.TokenClaims},
		// 70 dots escape to 210 bytes: no subject could carry its events.
		{"tenant beyond a subject token", rs(func(m map[string]any) { m["tenant"] = strings.Repeat(".", 70) }), identity.TokenClaims},

		// SPIFFE IDs in sub.
		{"SPIFFE uppercase trust domain", rs(func(m map[string]any) { m["sub"] = "spiffe://Acme.example/agent" }), identity.TokenClaims},
		{"SPIFFE with port", rs(func(m map[string]any) { m["sub"] = "spiffe://acme.example:8443/agent" }), identity.TokenClaims},
		{"SPIFFE with userinfo", rs(func(m map[string]any) { m["sub"] = "spiffe://u@acme.example/agent" }), identity.TokenClaims},
		{"SPIFFE with query", rs(func(m map[string]any) { m["sub"] = "spiffe://acme.example/agent?x=1" }), identity.TokenClaims},
		{"SPIFFE with fragment", rs(func(m map[string]any) { m["sub"] = "spiffe://acme.example/agent#x" }), identity.TokenClaims},
		{"SPIFFE without path", rs(func(m map[string]any) { m["sub"] = "spiffe://acme.example" }), identity.TokenClaims},
		{"SPIFFE dot-dot segment", rs(func(m map[string]any) { m["sub"] = "spiffe://acme.example/a/../admin" }), identity.TokenClaims},
		{"SPIFFE scheme in uppercase", rs(func(m map[string]any) { m["sub"] = "SPIFFE://acme.example/agent" }), identity.TokenClaims},

		// Delegation.
		{"act not an object", rs(func(m map[string]any) { m["act"] = "agent:a" }), identity.TokenClaims},
		{"act without sub", rs(func(m map[string]any) { m["act"] = map[string]any{"iss": "x"} }), identity.TokenClaims},
		{"act chain too deep", rs(func(m map[string]any) { m["act"] = deep(9) }), identity.ChainTooDeep},
		{"may_act excludes the current actor", rs(func(m map[string]any) {
			m["act"] = map[string]any{"sub": "agent:mallory", "act": map[string]any{"sub": "agent:planner"}}
			m["may_act"] = map[string]any{"sub": "agent:planner"}
		}), identity.DelegationNotAllowed},
		{"may_act names another issuer", rs(func(m map[string]any) {
			m["act"] = map[string]any{"sub": "agent:a", "iss": "https://evil"}
			m["may_act"] = map[string]any{"sub": "agent:a", "iss": "https://agents"}
		}), identity.DelegationNotAllowed},
		{"may_act not an object", rs(func(m map[string]any) { m["may_act"] = "agent:a" }), identity.TokenClaims},
		{"may_act empty list", rs(func(m map[string]any) { m["may_act"] = []any{} }), identity.TokenClaims},

		// Structure.
		{"oversized", sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) { m["pad"] = strings.Repeat("a", 8<<10) }), nil), identity.TokenTooLarge},
		{"empty", "", identity.TokenMalformed},
		{"two parts", goodParts[0] + "." + goodParts[1], identity.TokenMalformed},
		{"four parts", good + ".x", identity.TokenMalformed},
		{"five parts (JWE)", enc([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a.b.c.d", identity.TokenMalformed},
		{"nested JWT as JWE", good + "." + goodParts[0], identity.TokenMalformed},
		{"bad base64 header", "*" + good, identity.TokenMalformed},
		{"padded base64", goodParts[0] + "=." + goodParts[1] + "." + goodParts[2], identity.TokenMalformed},
		{"standard base64 alphabet", goodParts[0] + "." + goodParts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(goodParts[2]) + "+", identity.TokenMalformed},
		{"bad base64 signature", goodParts[0] + "." + goodParts[1] + ".!!", identity.TokenMalformed},
		{"header not JSON", enc([]byte("alg=RS256")) + "." + goodParts[1] + "." + goodParts[2], identity.TokenMalformed},
		{"header a JSON array", enc([]byte(`["RS256"]`)) + "." + goodParts[1] + "." + goodParts[2], identity.TokenMalformed},
		{"header with trailing data", rawHeader(`{"alg":"RS256","kid":"rsa-1"}{}`), identity.TokenMalformed},
		{"duplicate alg in header", rawHeader(`{"alg":"RS256","kid":"rsa-1","alg":"none"}`), identity.TokenMalformed},
		{"duplicate kid in header, escaped", rawHeader(`{"alg":"RS256","kid":"rsa-1","\u006bid":"ec-1"}`), identity.TokenMalformed},
		{"claims not JSON", rawClaims(`{"iss":`), identity.TokenMalformed},
		{"duplicate sub in claims", rawClaims(`{"iss":"` + issuer + `","aud":"rampart","exp":1800003600,"tenant":"t","sub":"alice","sub":"admin"}`), identity.TokenMalformed},
		{"duplicate sub in act", rawClaims(`{"iss":"` + issuer + `","aud":"rampart","exp":1800003600,"tenant":"t","sub":"alice","act":{"sub":"a","sub":"b"}}`), identity.TokenMalformed},
		{"claims nested too deep", rawClaims(`{"iss":"` + issuer + `","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), identity.TokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ti.v.VerifyToken(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("accepted as %+v, want %s", id, tt.want)
			}
			checkCode(t, err, tt.want)
		})
	}
}

func TestMaxTokenBytes(t *testing.T) {
	ti := newTestIssuer(t, func(c *identity.Config) { c.MaxTokenBytes = 512 })
	small := sign(t, jwa.EdDSA, ti.ed, claims(nil), nil)
	if len(small) > 512 {
		t.Fatalf("test token of %d bytes is not small", len(small))
	}
	if _, err := ti.v.VerifyToken(context.Background(), small); err != nil {
		t.Fatalf("small token rejected: %v", err)
	}
	big := sign(t, jwa.EdDSA, ti.ed, claims(func(m map[string]any) { m["pad"] = strings.Repeat("a", 400) }), nil)
	_, err := ti.v.VerifyToken(context.Background(), big)
	checkCode(t, err, identity.TokenTooLarge)
}

func TestRequireTokenType(t *testing.T) {
	ti := newTestIssuer(t, func(c *identity.Config) {
		c.RequireTokenType = true
		c.TokenTypes = []string{"at+jwt"}
	})
	tests := []struct {
		name string
		typ  any // nil: no typ header
		want identity.Code
	}{
		{name: "at+jwt", typ: "at+jwt"},
		{name: "missing", typ: nil, want: identity.TokenHeader},
		{name: "JWT no longer accepted", typ: "JWT", want: identity.TokenHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, jwa.EdDSA, ti.ed, claims(nil), func(h map[string]any) {
				if tt.typ == nil {
					delete(h, "typ")
				} else {
					h["typ"] = tt.typ
				}
			})
			_, err := ti.v.VerifyToken(context.Background(), tok)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkCode(t, err, tt.want)
		})
	}
}

func TestVerifyRequestHeaders(t *testing.T) {
	ti := newTestIssuer(t, nil)
	noSession := sign(t, jwa.RS256, ti.rsa, claims(func(m map[string]any) { delete(m, "sid") }), nil)
	withSession := sign(t, jwa.RS256, ti.rsa, claims(nil), nil)
	tests := []struct {
		name        string
		header      http.Header
		wantCode    identity.Code
		wantSession string
		wantTask    string
	}{
		{name: "no header", header: http.Header{}, wantCode: identity.TokenMissing},
		{name: "basic auth", header: http.Header{"Authorization": {"Basic YTpi"}}, wantCode: identity.TokenMissing},
		{name: "bearer without token", header: http.Header{"Authorization": {"Bearer  "}}, wantCode: identity.TokenMissing},
		{name: "two Authorization headers", header: http.Header{"Authorization": {"Bearer " + withSession, "Bearer " + noSession}}, wantCode: identity.TokenMalformed},
		{
			// Headers are the client's word: the enforcer binds them, the
			// verifier never takes them for the token's.
			name:   "session and task headers are not claims",
			header: http.Header{"Authorization": {"Bearer " + noSession}, "Mcp-Session-Id": {"hdr-sess"}, "Agent-Task-Id": {"hdr-task"}, "X-Rampart-Task": {"hdr-task"}},
		},
		{
			name:        "claim wins over header",
			header:      http.Header{"Authorization": {"bearer " + withSession}, "Mcp-Session-Id": {"hdr-sess"}},
			wantSession: "sess-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ti.v.Verify(context.Background(), tt.header)
			if tt.wantCode != "" {
				checkCode(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.SessionID != tt.wantSession || id.TaskID != tt.wantTask {
				t.Errorf("session, task = %q, %q; want %q, %q", id.SessionID, id.TaskID, tt.wantSession, tt.wantTask)
			}
		})
	}
}

func TestCodesAreDistinct(t *testing.T) {
	seen := map[identity.Code]bool{}
	for _, c := range identity.Codes() {
		if c == "" || seen[c] {
			t.Errorf("code %q is empty or listed twice", c)
		}
		seen[c] = true
	}
}
