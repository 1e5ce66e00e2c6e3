package identity_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const (
	issuer   = "https://idp.example"
	audience = "rampart"
)

// t0 is the fake "now" of most tests, so claims and the cache are
// deterministic.
var t0 = time.Unix(1_800_000_000, 0)

// clock is a fake clock that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// signer is a private key and the kid its public half has in a JWKS.
type signer struct {
	kid  string
	priv any
	pub  any
}

func (s signer) jwk(t testing.TB) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(s.pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, s.kid); err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaSigner(t testing.TB, kid string) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: k, pub: &k.PublicKey}
}

func ecSigner(t testing.TB, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: k, pub: &k.PublicKey}
}

func edSigner(t testing.TB, kid string) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: priv, pub: pub}
}

// jwksJSON is the public JWKS of signers.
func jwksJSON(t testing.TB, signers ...signer) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, s := range signers {
		if err := set.AddKey(s.jwk(t)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJWKS(t testing.TB, signers ...signer) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, jwksJSON(t, signers...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims returns a valid claim set at t0, modified by edit.
func claims(edit func(m map[string]any)) map[string]any {
	m := map[string]any{
		"iss":    issuer,
		"aud":    audience,
		"sub":    "user:alice",
		"exp":    t0.Add(time.Hour).Unix(),
		"iat":    t0.Unix(),
		"tenant": "acme",
		"sid":    "sess-1",
	}
	if edit != nil {
		edit(m)
	}
	return m
}

var enc = base64.RawURLEncoding.EncodeToString

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawSign signs exactly the given header and payload JSON text, so tests
// can send headers and claim sets no library would produce (duplicate
// keys, forbidden parameters). key is a crypto key or HMAC secret.
func rawSign(t testing.TB, alg jwa.SignatureAlgorithm, key any, header, payload string) string {
	t.Helper()
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	s, err := jws.NewSigner(alg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte(input), key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// sign signs m with s under alg, with header fields {alg, kid, typ: JWT}
// changed by editHeader.
func sign(t testing.TB, alg jwa.SignatureAlgorithm, s signer, m map[string]any, editHeader func(h map[string]any)) string {
	t.Helper()
	h := map[string]any{"alg": alg.String(), "kid": s.kid, "typ": "JWT"}
	if editHeader != nil {
		editHeader(h)
	}
	return rawSign(t, alg, s.priv, mustJSON(t, h), mustJSON(t, m))
}

// jwksServer serves a JWKS that tests can replace, counting fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	failing atomic.Bool
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		if s.failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }
