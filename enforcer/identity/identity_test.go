package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/rampart-io/rampart/enforcer/identity"
)

const (
	issuer   = "https://idp.example"
	audience = "rampart"
)

// keys is a signing key pair whose public half is in the test JWKS.
type keys struct {
	rsaPriv jwk.Key
	rsaPub  *rsa.PublicKey
	ecPriv  jwk.Key
	set     jwk.Set
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &keys{rsaPub: &rk.PublicKey, set: jwk.NewSet()}
	k.rsaPriv = mustKey(t, rk, "rsa-1")
	k.ecPriv = mustKey(t, ek, "ec-1")
	for _, priv := range []jwk.Key{k.rsaPriv, k.ecPriv} {
		pub, err := priv.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := k.set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func mustKey(t *testing.T, raw any, kid string) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return k
}

// writeJWKS writes the public key set to a file and returns its path.
func (k *keys) writeJWKS(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(k.set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims returns a valid claim set, modified by edit.
func claims(edit func(m map[string]any)) map[string]any {
	m := map[string]any{
		"iss":    issuer,
		"aud":    audience,
		"sub":    "user:alice",
		"exp":    time.Now().Add(time.Hour).Unix(),
		"iat":    time.Now().Unix(),
		"tenant": "acme",
		"sid":    "sess-1",
	}
	if edit != nil {
		edit(m)
	}
	return m
}

func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, m map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unsigned builds an alg-none token by hand; jwx will not sign one.
func unsigned(t *testing.T, kid string, m map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"})
	p, _ := json.Marshal(m)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p) + "."
}

func TestVerifyToken(t *testing.T) {
	k := newKeys(t)
	v, err := identity.New(context.Background(), identity.Config{Issuer: issuer, Audience: audience, JWKSFile: k.writeJWKS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	// The RSA public key as PEM: what an attacker signs HS256 with, hoping
	// the verifier uses the "key bytes" as an HMAC secret.
	der, err := x509.MarshalPKIXPublicKey(k.rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hmacKey := mustKey(t, pemBytes, "rsa-1")

	unknown, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		token     func() string
		wantCode  identity.Code
		wantChain []string
		check     func(t *testing.T, id *identity.Identity)
	}{
		{
			name:  "valid RS256",
			token: func() string { return sign(t, jwa.RS256, k.rsaPriv, claims(nil)) },
			check: func(t *testing.T, id *identity.Identity) {
				if id.Subject != "user:alice" || id.Issuer != issuer || id.Tenant != "acme" || id.SessionID != "sess-1" {
					t.Errorf("identity = %+v", id)
				}
				if id.CurrentActor() != "user:alice" {
					t.Errorf("current actor = %q, want the subject", id.CurrentActor())
				}
			},
		},
		{
			name: "valid ES256 with SPIFFE subject and task",
			token: func() string {
				return sign(t, jwa.ES256, k.ecPriv, claims(func(m map[string]any) {
					m["sub"] = "spiffe://acme.example/agent/planner"
					m["task"] = "task-9"
				}))
			},
			check: func(t *testing.T, id *identity.Identity) {
				if id.SPIFFEID != "spiffe://acme.example/agent/planner" || id.TaskID != "task-9" {
					t.Errorf("identity = %+v", id)
				}
			},
		},
		{
			name:     "alg none",
			token:    func() string { return unsigned(t, "rsa-1", claims(nil)) },
			wantCode: identity.TokenInvalid,
		},
		{
			name:     "HS256 with the RSA public key as secret",
			token:    func() string { return sign(t, jwa.HS256, hmacKey, claims(nil)) },
			wantCode: identity.TokenInvalid,
		},
		{
			name:     "unknown kid",
			token:    func() string { return sign(t, jwa.RS256, mustKey(t, unknown, "rsa-2"), claims(nil)) },
			wantCode: identity.TokenInvalid,
		},
		{
			name:     "known kid, wrong key",
			token:    func() string { return sign(t, jwa.RS256, mustKey(t, unknown, "rsa-1"), claims(nil)) },
			wantCode: identity.TokenInvalid,
		},
		{
			name:     "kid of an RSA key with ES256",
			token:    func() string { return sign(t, jwa.ES256, mustKeyFrom(t, k.ecPriv, "rsa-1"), claims(nil)) },
			wantCode: identity.TokenInvalid,
		},
		{
			name: "wrong issuer",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { m["iss"] = "https://evil" }))
			},
			wantCode: identity.TokenClaims,
		},
		{
			name: "wrong audience",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { m["aud"] = "other" }))
			},
			wantCode: identity.TokenClaims,
		},
		{
			name: "expired beyond skew",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { m["exp"] = time.Now().Add(-time.Minute).Unix() }))
			},
			wantCode: identity.TokenExpired,
		},
		{
			name: "expired within skew",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { m["exp"] = time.Now().Add(-5 * time.Second).Unix() }))
			},
		},
		{
			name: "missing exp",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { delete(m, "exp") }))
			},
			wantCode: identity.TokenClaims,
		},
		{
			name:     "garbage",
			token:    func() string { return "not.a.token" },
			wantCode: identity.TokenInvalid,
		},
		{
			// user:alice delegated to agent:planner, which delegated to
			// agent:sub, which is calling now: the outermost act is current.
			name: "act chain, earliest actor first",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) {
					m["act"] = map[string]any{"sub": "agent:sub", "act": map[string]any{"sub": "agent:planner"}}
				}))
			},
			wantChain: []string{"agent:planner", "agent:sub"},
			check: func(t *testing.T, id *identity.Identity) {
				if id.CurrentActor() != "agent:sub" {
					t.Errorf("current actor = %q, want agent:sub", id.CurrentActor())
				}
			},
		},
		{
			name: "act chain too deep",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) {
					var act map[string]any
					for i := range 9 {
						act = map[string]any{"sub": "agent:" + string(rune('a'+i)), "act": act}
						if i == 0 {
							delete(act, "act")
						}
					}
					m["act"] = act
				}))
			},
			wantCode: identity.ChainTooDeep,
		},
		{
			name: "act without sub",
			token: func() string {
				return sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { m["act"] = map[string]any{"iss": "x"} }))
			},
			wantCode: identity.TokenClaims,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.VerifyToken(context.Background(), tt.token())
			if tt.wantCode != "" {
				if err == nil {
					t.Fatalf("accepted, want %s", tt.wantCode)
				}
				t.Logf("rejected: %v", err)
				if got := identity.CodeOf(err); got != tt.wantCode {
					t.Fatalf("code = %s, want %s (%v)", got, tt.wantCode, err)
				}
				if !errors.Is(err, &identity.Error{Code: tt.wantCode}) {
					t.Errorf("errors.Is does not match the code")
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tt.wantChain != nil {
				var got []string
				for _, a := range id.Chain {
					got = append(got, a.Subject)
				}
				if !slices.Equal(got, tt.wantChain) {
					t.Errorf("chain = %v, want %v", got, tt.wantChain)
				}
			}
			if tt.check != nil {
				tt.check(t, id)
			}
		})
	}
}

// mustKeyFrom clones key under another kid.
func mustKeyFrom(t *testing.T, key jwk.Key, kid string) jwk.Key {
	t.Helper()
	c, err := key.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyRequestHeaders(t *testing.T) {
	k := newKeys(t)
	// Serve the JWKS over HTTP to cover jwks_url.
	jwks, _ := json.Marshal(k.set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	v, err := identity.New(context.Background(), identity.Config{Issuer: issuer, Audience: audience, JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	noSession := sign(t, jwa.RS256, k.rsaPriv, claims(func(m map[string]any) { delete(m, "sid") }))
	tests := []struct {
		name        string
		header      http.Header
		wantCode    identity.Code
		wantSession string
		wantTask    string
	}{
		{name: "no header", header: http.Header{}, wantCode: identity.TokenMissing},
		{name: "basic auth", header: http.Header{"Authorization": {"Basic YTpi"}}, wantCode: identity.TokenMissing},
		{
			name:        "session and task from headers",
			header:      http.Header{"Authorization": {"Bearer " + noSession}, "Mcp-Session-Id": {"hdr-sess"}, "X-Rampart-Task": {"hdr-task"}},
			wantSession: "hdr-sess",
			wantTask:    "hdr-task",
		},
		{
			name:        "claim wins over header",
			header:      http.Header{"Authorization": {"bearer " + sign(t, jwa.RS256, k.rsaPriv, claims(nil))}, "Mcp-Session-Id": {"hdr-sess"}},
			wantSession: "sess-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			r.Header = tt.header
			id, err := v.Verify(r)
			if tt.wantCode != "" {
				if got := identity.CodeOf(err); err == nil || got != tt.wantCode {
					t.Fatalf("err = %v, want %s", err, tt.wantCode)
				}
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

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  identity.Config
	}{
		{"no issuer", identity.Config{Audience: "a", JWKSFile: "f"}},
		{"no audience", identity.Config{Issuer: "i", JWKSFile: "f"}},
		{"no jwks", identity.Config{Issuer: "i", Audience: "a"}},
		{"both jwks", identity.Config{Issuer: "i", Audience: "a", JWKSFile: "f", JWKSURL: "u"}},
		{"hmac", identity.Config{Issuer: "i", Audience: "a", JWKSFile: "f", Algorithms: []string{"HS256"}}},
		{"none", identity.Config{Issuer: "i", Audience: "a", JWKSFile: "f", Algorithms: []string{"none"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			if err := tt.cfg.Validate(); err == nil {
				t.Error("Validate accepted")
			}
		})
	}
}
