package credential_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
)

// writeKey writes k as a PEM PKCS#8 file and returns its path.
func writeKey(t testing.TB, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func edKey(t testing.TB) string {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return writeKey(t, k)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newMinter(t testing.TB, cfg credential.Config, c *clock) *credential.Minter {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = "https://rampart.test"
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = edKey(t)
	}
	m, err := credential.New(cfg, credential.WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func baseRequest() credential.Request {
	return credential.Request{Tenant: "acme", Issuer: "https://idp", Subject: "user:alice",
		Chain:  []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:worker", Issuer: "https://idp"}},
		TaskID: "t-1", SessionID: "s-1", Audience: "https://crm", Scope: []string{"search"}, TTL: 5 * time.Minute}
}

// A cached token is found only by the request it was minted for: another
// principal, actor, chain, task, session, audience, scope or tenant never
// gets it.
func TestCacheNeverCrossesRequests(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	m := newMinter(t, credential.Config{}, c)
	r := baseRequest()
	tok, err := m.Mint(&r)
	if err != nil {
		t.Fatal(err)
	}
	m.Keep(&r, tok)
	for name, edit := range map[string]func(r *credential.Request){
		"tenant":            func(r *credential.Request) { r.Tenant = "other" },
		"issuer":            func(r *credential.Request) { r.Issuer = "https://other-idp" },
		"subject":           func(r *credential.Request) { r.Subject = "user:mallory" },
		"current actor":     func(r *credential.Request) { r.Chain[1].Subject = "agent:rogue" },
		"actor issuer":      func(r *credential.Request) { r.Chain[1].Issuer = "" },
		"shorter chain":     func(r *credential.Request) { r.Chain = r.Chain[1:] },
		"no chain":          func(r *credential.Request) { r.Chain = nil },
		"task":              func(r *credential.Request) { r.TaskID = "t-2" },
		"no task":           func(r *credential.Request) { r.TaskID = "" },
		"session":           func(r *credential.Request) { r.SessionID = "s-2" },
		"audience":          func(r *credential.Request) { r.Audience = "https://crm.evil" },
		"scope":             func(r *credential.Request) { r.Scope = []string{"delete"} },
		"wider scope":       func(r *credential.Request) { r.Scope = []string{"search", "delete"} },
		"ttl":               func(r *credential.Request) { r.TTL = time.Hour },
		"deadline":          func(r *credential.Request) { r.Deadline = c.t.Add(time.Minute) },
		"fields run across": func(r *credential.Request) { r.Tenant, r.Issuer = "acmehttps://idp", "" },
	} {
		t.Run(name, func(t *testing.T) {
			other := baseRequest()
			edit(&other)
			if got, ok := m.Cached(&other); ok {
				t.Fatalf("token %s minted for another request handed out", got.JTI)
			}
		})
	}
	if got, ok := m.Cached(&r); !ok || got.JTI != tok.JTI {
		t.Fatalf("the same request missed the cache (%v)", ok)
	}
}

// A token is reused only while more than a quarter of its life remains.
func TestCacheStaleTokensAreNotReused(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	m := newMinter(t, credential.Config{}, c)
	r := baseRequest()
	tok, _ := m.Mint(&r)
	m.Keep(&r, tok)
	c.t = c.t.Add(3 * time.Minute)
	if _, ok := m.Cached(&r); !ok {
		t.Fatal("a token with 2 of 5 minutes left was not reused")
	}
	c.t = c.t.Add(time.Minute + time.Second)
	if _, ok := m.Cached(&r); ok {
		t.Fatal("a token with under a quarter of its life left was reused")
	}
}

// A tenant that floods the cache evicts only its own tokens.
func TestCacheBoundedPerTenant(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	m := newMinter(t, credential.Config{Cache: credential.CacheConfig{MaxPerTenant: 8, MaxTenants: 2}}, c)
	victim := baseRequest()
	victim.Tenant = "victim"
	tok, _ := m.Mint(&victim)
	m.Keep(&victim, tok)
	for i := range 100 {
		r := baseRequest()
		r.TaskID = "flood-" + string(rune('a'+i%26)) + strings.Repeat("x", i)
		m.Keep(&r, tok)
	}
	if n := m.CachedCount("acme"); n != 8 {
		t.Errorf("flooding tenant holds %d tokens, bound 8", n)
	}
	if _, ok := m.Cached(&victim); !ok {
		t.Error("another tenant's flood evicted the victim's token")
	}
	third := baseRequest()
	third.Tenant = "third"
	m.Keep(&third, tok)
	if m.CachedCount("acme")+m.CachedCount("victim")+m.CachedCount("third") > 2*8 {
		t.Error("more tenants kept than max_tenants")
	}
	if _, ok := m.Cached(&third); !ok {
		t.Error("the newest tenant's token was not kept")
	}
}

// A minted token verifies against the JWKS the enforcer serves, with
// jwx, and carries every claim the backend needs: the whole act chain,
// the audience, scope, task and session, and a kid naming the key.
func TestMintedTokenVerifiesAgainstServedJWKS(t *testing.T) {
	for name, key := range map[string]func(t testing.TB) string{
		"Ed25519": edKey,
		"ES256": func(t testing.TB) string {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return writeKey(t, k)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := &clock{time.Now().Truncate(time.Second)}
			m := newMinter(t, credential.Config{KeyFile: key(t)}, c)
			srv := httptest.NewServer(m.Keys().Handler())
			defer srv.Close()
			r := baseRequest()
			tok, err := m.Mint(&r)
			if err != nil {
				t.Fatal(err)
			}
			set, err := jwk.Fetch(context.Background(), srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseString(tok.Raw, jwt.WithKeySet(set), jwt.WithIssuer("https://rampart.test"),
				jwt.WithAudience("https://crm"), jwt.WithClock(jwt.ClockFunc(c.now)))
			if err != nil {
				t.Fatalf("minted token does not verify against the served JWKS: %v", err)
			}
			msg, _ := jws.ParseString(tok.Raw)
			h := msg.Signatures()[0].ProtectedHeaders()
			if h.KeyID() != m.Keys().KeyID() || h.KeyID() == "" || h.Type() != credential.TokenType {
				t.Errorf("header kid %q typ %q, want kid %q typ %q", h.KeyID(), h.Type(), m.Keys().KeyID(), credential.TokenType)
			}
			if parsed.Subject() != "user:alice" || parsed.JwtID() != tok.JTI || tok.JTI == "" {
				t.Errorf("sub %q jti %q", parsed.Subject(), parsed.JwtID())
			}
			if !parsed.Expiration().Equal(c.t.Add(5*time.Minute)) || !parsed.IssuedAt().Equal(c.t) {
				t.Errorf("iat %v exp %v, want %v and +5m", parsed.IssuedAt(), parsed.Expiration(), c.t)
			}
			priv := parsed.PrivateClaims()
			for k, want := range map[string]string{"scope": "search", "task_id": "t-1", "session_id": "s-1", "tenant": "acme"} {
				if priv[k] != want {
					t.Errorf("claim %s = %v, want %q", k, priv[k], want)
				}
			}
			act, _ := json.Marshal(priv["act"])
			if want := `{"act":{"sub":"agent:planner"},"iss":"https://idp","sub":"agent:worker"}`; string(act) != want {
				t.Errorf("act %s, want %s (current actor outermost, every earlier one nested)", act, want)
			}
		})
	}
}

// No token outlives the task's deadline, and none is minted after it.
func TestMintHonoursDeadline(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	m := newMinter(t, credential.Config{MaxTTL: 10 * time.Minute}, c)
	r := baseRequest()
	r.TTL = time.Hour // above max_ttl
	tok, _ := m.Mint(&r)
	if got := tok.Expires.Sub(c.t); got != 10*time.Minute {
		t.Errorf("ttl %s, want max_ttl 10m", got)
	}
	r.Deadline = c.t.Add(90 * time.Second)
	tok, _ = m.Mint(&r)
	if !tok.Expires.Equal(r.Deadline) {
		t.Errorf("exp %v, want the deadline %v", tok.Expires, r.Deadline)
	}
	r.Deadline = c.t
	if _, err := m.Mint(&r); !errors.Is(err, credential.ErrDeadline) {
		t.Errorf("mint at the deadline: %v, want ErrDeadline", err)
	}
	r = baseRequest()
	r.Subject = ""
	if _, err := m.Mint(&r); !errors.Is(err, credential.ErrNoPrincipal) {
		t.Errorf("mint without a subject: %v", err)
	}
}

// During a rotation both keys are published, public halves only, and a
// token signed with the next key verifies against the same set.
func TestJWKSRotation(t *testing.T) {
	c := &clock{time.Now().Truncate(time.Second)}
	cur, next := edKey(t), edKey(t)
	before := newMinter(t, credential.Config{KeyFile: cur, NextKeyFile: next}, c)
	after := newMinter(t, credential.Config{KeyFile: next, NextKeyFile: cur}, c)
	set, err := jwk.Parse(before.Keys().JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 {
		t.Fatalf("%d keys published, want 2", set.Len())
	}
	var raw struct{ Keys []map[string]any }
	_ = json.Unmarshal(before.Keys().JWKS(), &raw)
	for _, k := range raw.Keys {
		if _, private := k["d"]; private {
			t.Fatal("the JWKS publishes a private key")
		}
		if k["kid"] == "" || k["use"] != "sig" || k["alg"] != "EdDSA" {
			t.Errorf("published key %v lacks kid, use or alg", k)
		}
	}
	if before.Keys().KeyID() == after.Keys().KeyID() {
		t.Fatal("two keys share a kid")
	}
	r := baseRequest()
	tok, _ := after.Mint(&r)
	if _, err := jwt.ParseString(tok.Raw, jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(c.now))); err != nil {
		t.Fatalf("a token signed with the next key does not verify against the published set: %v", err)
	}
	// A key nobody published does not verify.
	stranger := newMinter(t, credential.Config{}, c)
	tok, _ = stranger.Mint(&r)
	if _, err := jwt.ParseString(tok.Raw, jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(c.now))); err == nil {
		t.Fatal("a token signed with an unpublished key verified")
	}
}

func TestJWKSHandlerMethods(t *testing.T) {
	m := newMinter(t, credential.Config{}, &clock{time.Now()})
	rec := httptest.NewRecorder()
	m.Keys().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, credential.JWKSPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestConfigRefusals(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ed := edKey(t)
	for name, tc := range map[string]struct {
		cfg  credential.Config
		want string
	}{
		"no issuer":           {credential.Config{KeyFile: ed}, "issuer is required"},
		"plain http":          {credential.Config{Issuer: "http://rampart.acme", KeyFile: ed}, "must be https"},
		"relative issuer":     {credential.Config{Issuer: "rampart", KeyFile: ed}, "not an absolute URL"},
		"no key":              {credential.Config{Issuer: "https://r"}, "key_file is required"},
		"same key twice":      {credential.Config{Issuer: "https://r", KeyFile: ed, NextKeyFile: ed}, "next_key_file is key_file"},
		"rsa key":             {credential.Config{Issuer: "https://r", KeyFile: writeKey(t, rsaKey)}, "not supported"},
		"p-384 key":           {credential.Config{Issuer: "https://r", KeyFile: writeKey(t, p384)}, "P-256"},
		"missing next key":    {credential.Config{Issuer: "https://r", KeyFile: ed, NextKeyFile: "/nonexistent"}, "no such file"},
		"ttl under a second":  {credential.Config{Issuer: "https://r", KeyFile: ed, MaxTTL: time.Millisecond}, "under a second"},
		"loopback http is ok": {credential.Config{Issuer: "http://127.0.0.1:8080", KeyFile: ed}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := credential.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	for name, s := range map[string]credential.Spec{
		"no audience":  {TTL: time.Minute},
		"space scope":  {Audience: "a", Scope: []string{"a b"}, TTL: time.Minute},
		"quote scope":  {Audience: "a", Scope: []string{`a"`}, TTL: time.Minute},
		"empty scope":  {Audience: "a", Scope: []string{""}, TTL: time.Minute},
		"tiny ttl":     {Audience: "a", TTL: time.Millisecond},
		"unicode name": {Audience: "a", Scope: []string{"é"}, TTL: time.Minute},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := credential.Spec{Audience: "https://crm"}
	ok.SetDefaults()
	if err := ok.Validate(); err != nil || ok.TTL != credential.DefaultTTL {
		t.Errorf("default spec: %v, ttl %s", err, ok.TTL)
	}
}

func TestSpecJSON(t *testing.T) {
	b, err := json.Marshal(credential.Spec{Audience: "https://crm", Scope: []string{"r"}, TTL: 2 * time.Minute})
	if err != nil || string(b) != `{"audience":"https://crm","scope":["r"],"ttl":"2m0s"}` {
		t.Fatalf("%s %v", b, err)
	}
}
