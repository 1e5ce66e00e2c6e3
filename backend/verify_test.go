package backend_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/backend"
)

// TestRefusals: the abuse cases first. Each request is refused with 401
// (503 when the backend could not check) and a stable code, and never
// reaches the handler; the last cases are those let through.
func TestRefusals(t *testing.T) {
	f := newFleet(t)
	v, err := backend.New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())

	revoked := f.claims()
	revoked["jti"] = "jti-revoked"
	f.revoke("jti-revoked")
	b64 := func(v any) string { j, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(j) }
	unsigned := func(header map[string]any, claims map[string]any) string {
		return b64(header) + "." + b64(claims) + "."
	}
	// HS256 keyed with the Ed25519 public key's bytes: the classic
	// confusion of a verifier that takes the alg from the token.
	hs256 := func() string {
		pub := f.ed.Public().(ed25519.PublicKey)
		in := b64(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": f.edKID}) + "." + b64(f.claims())
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	otherKey := func(alg jwa.SignatureAlgorithm, kid string) string {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		payload, _ := json.Marshal(f.claims())
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, "at+jwt")
		_ = h.Set(jws.KeyIDKey, kid)
		raw, _ := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(h)))
		return string(raw)
	}
	// The token carries its own key: a verifier that trusts an embedded
	// jwk verifies anything.
	embeddedKey := func() string {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		pk, _ := jwk.FromRaw(priv)
		pub, _ := pk.PublicKey()
		payload, _ := json.Marshal(f.claims())
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, "at+jwt")
		_ = h.Set(jws.KeyIDKey, f.edKID)
		_ = h.Set(jws.JWKKey, pub)
		raw, _ := jws.Sign(payload, jws.WithKey(jwa.EdDSA, priv, jws.WithProtectedHeaders(h)))
		return string(raw)
	}
	with := func(k string, val any) map[string]any { c := f.claims(); c[k] = val; return c }
	without := func(k string) map[string]any { c := f.claims(); delete(c, k); return c }
	now := time.Now().Unix()

	for _, c := range []struct {
		name   string
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"no Authorization", nil, 401, backend.CodeMissingCredential},
		{"token in the query string is ignored", func(r *http.Request) {
			r.URL.RawQuery = "access_token=" + f.sign(f.claims(), nil)
		}, 401, backend.CodeMissingCredential},
		{"token in a cookie is ignored", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "access_token", Value: f.sign(f.claims(), nil)})
		}, 401, backend.CodeMissingCredential},
		{"two Authorization headers", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+f.sign(f.claims(), nil))
			r.Header.Add("Authorization", "Bearer "+f.sign(f.claims(), nil))
		}, 401, backend.CodeAmbiguousCredential},
		{"two tokens in one header", withBearer(f.sign(f.claims(), nil) + ", Bearer " + f.sign(f.claims(), nil)), 401, backend.CodeInvalidCredential},
		{"Basic scheme", func(r *http.Request) { r.SetBasicAuth("alice", "secret") }, 401, backend.CodeInvalidCredential},
		{"alg none", withBearer(unsigned(map[string]any{"alg": "none", "typ": "at+jwt", "kid": f.edKID}, f.claims())), 401, backend.CodeInvalidCredential},
		{"HS256 keyed with the public key", withBearer(hs256()), 401, backend.CodeInvalidCredential},
		{"kid of no key in the JWKS", withBearer(otherKey(jwa.EdDSA, "made-up-kid")), 401, backend.CodeInvalidCredential},
		{"the fleet's kid, signed by another key", withBearer(otherKey(jwa.EdDSA, f.edKID)), 401, backend.CodeInvalidCredential},
		{"a key embedded in the token", withBearer(embeddedKey()), 401, backend.CodeInvalidCredential},
		{"no kid", withBearer(f.sign(f.claims(), func(h jws.Headers) { _ = h.Remove(jws.KeyIDKey) })), 401, backend.CodeInvalidCredential},
		{"typ JWT: an ID token or the agent's own", withBearer(f.sign(f.claims(), func(h jws.Headers) { _ = h.Set(jws.TypeKey, "JWT") })), 401, backend.CodeInvalidCredential},
		{"the agent's own token: its IdP's key, iss and typ", withBearer(func() string {
			_, idp, _ := ed25519.GenerateKey(rand.Reader)
			c := f.claims()
			c["iss"], c["aud"] = "https://idp.test", audience
			payload, _ := json.Marshal(c)
			h := jws.NewHeaders()
			_ = h.Set(jws.TypeKey, "JWT")
			_ = h.Set(jws.KeyIDKey, "idp-key-1")
			raw, _ := jws.Sign(payload, jws.WithKey(jwa.EdDSA, idp, jws.WithProtectedHeaders(h)))
			return string(raw)
		}()), 401, backend.CodeInvalidCredential},
		{"another issuer's claims under the fleet's key", withBearer(f.sign(with("iss", "https://idp.test"), nil)), 401, backend.CodeInvalidCredential},
		{"another audience", withBearer(f.sign(with("aud", "https://crm.test"), nil)), 401, backend.CodeWrongAudience},
		{"two audiences", withBearer(f.sign(with("aud", []string{audience, "https://crm.test"}), nil)), 401, backend.CodeWrongAudience},
		{"no audience", withBearer(f.sign(without("aud"), nil)), 401, backend.CodeWrongAudience},
		{"expired", withBearer(f.sign(with("exp", now-60), nil)), 401, backend.CodeCredentialExpired},
		{"no exp", withBearer(f.sign(without("exp"), nil)), 401, backend.CodeInvalidCredential},
		{"nbf in the future", withBearer(f.sign(with("nbf", now+120), nil)), 401, backend.CodeCredentialNotYetValid},
		{"no jti", withBearer(f.sign(without("jti"), nil)), 401, backend.CodeInvalidCredential},
		{"another tenant", withBearer(f.sign(with("tenant", "globex"), nil)), 401, backend.CodeWrongTenant},
		{"revoked jti (introspection)", withBearer(f.sign(revoked, nil)), 401, backend.CodeCredentialRevoked},
		{"oversized token", withBearer(strings.Repeat("a", 20<<10) + "." + "b." + "c"), 401, backend.CodeInvalidCredential},
		{"not a JWS", withBearer("not-a-token"), 401, backend.CodeInvalidCredential},

		{"valid", withBearer(f.sign(f.claims(), nil)), 200, ""},
		{"lowercase bearer", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+f.sign(f.claims(), nil)) }, 200, ""},
		{"ES256", withBearer(f.signES256(f.claims())), 200, ""},
		{"exp just past, within the leeway", withBearer(f.sign(with("exp", now-2), nil)), 200, ""},
		{"aud as an array of one", withBearer(f.sign(with("aud", []string{audience}), nil)), 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := call(t, h, c.edit)
			if a.status != c.status || a.code != c.code {
				t.Fatalf("answered %d %q (%s), want %d %q", a.status, a.code, a.body, c.status, c.code)
			}
			if c.status == 200 && !strings.HasPrefix(a.body, "served user:alice") {
				t.Fatalf("handler answered %q", a.body)
			}
		})
	}
	if got := v.Stats().Refused; got != 26 {
		t.Errorf("Stats.Refused %d, want 26", got)
	}
}

func (f *fleet) signES256(claims map[string]any) string {
	f.t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, f.ecKID)
	raw, err := jws.Sign(payload, jws.WithKey(jwa.ES256, f.ec, jws.WithProtectedHeaders(h)))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(raw)
}

// TestAlgMustMatchTheKey: a token naming the ES256 key's kid but alg
// EdDSA, or ES384 under it, is refused: the key decides, not the token.
func TestAlgMustMatchTheKey(t *testing.T) {
	f := newFleet(t)
	v, _ := backend.New(f.config())
	t.Cleanup(func() { _ = v.Close() })
	// EdDSA under the EC key's kid.
	tok := f.sign(f.claims(), func(h jws.Headers) { _ = h.Set(jws.KeyIDKey, f.ecKID) })
	if a := call(t, v.Wrap(served()), withBearer(tok)); a.code != backend.CodeInvalidCredential {
		t.Fatalf("answered %d %q", a.status, a.code)
	}
	// ES256 with a P-384 key under the EC kid.
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	payload, _ := json.Marshal(f.claims())
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, f.ecKID)
	raw, err := jws.Sign(payload, jws.WithKey(jwa.ES384, k, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	if a := call(t, v.Wrap(served()), withBearer(string(raw))); a.code != backend.CodeInvalidCredential {
		t.Fatalf("ES384 answered %d %q", a.status, a.code)
	}
}

// TestJWKSDownFailsClosed: with the key set unreachable, no credential
// is accepted (503 keys_unavailable); once it is back, after MinRefresh,
// the same token is.
func TestJWKSDownFailsClosed(t *testing.T) {
	f := newFleet(t)
	f.jwksDown.Store(true)
	cfg := f.config()
	now := time.Now()
	clock := func() time.Time { return now }
	v, _ := backend.New(cfg, backend.WithClock(clock))
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())
	c := f.claims()
	c["exp"] = now.Add(2 * time.Hour).Unix()
	tok := f.sign(c, nil)
	for range 3 {
		if a := call(t, h, withBearer(tok)); a.status != 503 || a.code != backend.CodeKeysUnavailable {
			t.Fatalf("JWKS down: answered %d %q", a.status, a.code)
		}
	}
	if n := f.jwksHits.Load(); n != 1 {
		t.Fatalf("the JWKS was fetched %d times within MinRefresh, want 1", n)
	}
	f.jwksDown.Store(false)
	now = now.Add(time.Hour)
	if a := call(t, h, withBearer(tok)); a.status != 200 {
		t.Fatalf("JWKS back: answered %d %q", a.status, a.code)
	}
}

// TestUnknownKIDRefreshIsRateLimited: a flood of made-up kids fetches the
// JWKS at most once per MinRefresh.
func TestUnknownKIDRefreshIsRateLimited(t *testing.T) {
	f := newFleet(t)
	now := time.Now()
	v, _ := backend.New(f.config(), backend.WithClock(func() time.Time { return now }))
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())
	c := f.claims()
	c["exp"] = now.Add(2 * time.Hour).Unix()
	if a := call(t, h, withBearer(f.sign(c, nil))); a.status != 200 {
		t.Fatalf("answered %d %q", a.status, a.code)
	}
	now = now.Add(time.Hour) // MinRefresh later
	for i := range 50 {
		tok := f.sign(c, func(h jws.Headers) { _ = h.Set(jws.KeyIDKey, "kid-"+string(rune('a'+i%26))) })
		if a := call(t, h, withBearer(tok)); a.code != backend.CodeInvalidCredential {
			t.Fatalf("answered %d %q", a.status, a.code)
		}
	}
	if n := f.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (the first use, one refresh for unknown kids)", n)
	}
}

// TestIntrospectionDownFailsClosed: without the revocations bucket, an
// introspection endpoint that does not answer refuses the request (503
// revocation_unavailable); with no endpoint configured as well, too.
func TestIntrospectionDownFailsClosed(t *testing.T) {
	f := newFleet(t)
	cfg := f.config()
	f.intro.Close()
	v, _ := backend.New(cfg)
	t.Cleanup(func() { _ = v.Close() })
	if a := call(t, v.Wrap(served()), withBearer(f.sign(f.claims(), nil))); a.status != 503 || a.code != backend.CodeRevocationUnavailable {
		t.Fatalf("introspection down: answered %d %q", a.status, a.code)
	}
	cfg.IntrospectionURL = ""
	v2, _ := backend.New(cfg)
	t.Cleanup(func() { _ = v2.Close() })
	if a := call(t, v2.Wrap(served()), withBearer(f.sign(f.claims(), nil))); a.status != 503 || a.code != backend.CodeRevocationUnavailable {
		t.Fatalf("no revocation source: answered %d %q", a.status, a.code)
	}
}

// TestReportingFailClosed: with fail_closed and no JetStream to report
// to, a valid credential is refused (503 reporting_unavailable); by
// default it is served and its report counted dropped.
func TestReportingFailClosed(t *testing.T) {
	f := newFleet(t)
	cfg := f.config()
	open, _ := backend.New(cfg)
	t.Cleanup(func() { _ = open.Close() })
	if a := call(t, open.Wrap(served()), withBearer(f.sign(f.claims(), nil))); a.status != 200 {
		t.Fatalf("fail-open: answered %d %q", a.status, a.code)
	}
	if s := open.Stats(); s.Dropped != 1 || s.Reported != 0 {
		t.Fatalf("fail-open stats %+v, want one dropped", s)
	}
	cfg.Report.FailClosed = true
	closed, _ := backend.New(cfg)
	t.Cleanup(func() { _ = closed.Close() })
	if a := call(t, closed.Wrap(served()), withBearer(f.sign(f.claims(), nil))); a.status != 503 || a.code != backend.CodeReportingUnavailable {
		t.Fatalf("fail-closed: answered %d %q", a.status, a.code)
	}
}

// TestConfigValidate: the required fields, the leeway's bound and the
// URLs' schemes.
func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]struct {
		cfg backend.Config
		ok  bool
	}{
		"good":                 {backend.Config{Issuer: "https://rampart.test", Audience: "https://files.test"}, true},
		"no issuer":            {backend.Config{Audience: "https://files.test"}, false},
		"no audience":          {backend.Config{Issuer: "https://rampart.test"}, false},
		"leeway too large":     {backend.Config{Issuer: "https://rampart.test", Audience: "a", Leeway: time.Hour}, false},
		"http jwks, not local": {backend.Config{Issuer: "https://rampart.test", Audience: "a", JWKSURL: "http://rampart.test/jwks"}, false},
		"http jwks, loopback":  {backend.Config{Issuer: "http://127.0.0.1:8443", Audience: "a"}, true},
		"http introspection":   {backend.Config{Issuer: "https://rampart.test", Audience: "a", IntrospectionURL: "http://rampart.test/i"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := c.cfg
			cfg.SetDefaults()
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate: %v, want ok %v", err, c.ok)
			}
		})
	}
}
