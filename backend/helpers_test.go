package backend_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
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

	"github.com/rampart-io/rampart/backend"
)

// fleet is an enforcer fleet as a backend sees it: its signing keys, the
// JWKS it serves, and an RFC 7662 introspection endpoint answering from
// the set of revoked jtis, which, as the enforcer's, answers only a caller
// presenting the backend's own token (accept; written to tokenFile). Both
// are real HTTP servers on loopback.
type fleet struct {
	t         *testing.T
	issuer    string
	ed        ed25519.PrivateKey
	edKID     string
	ec        *ecdsa.PrivateKey
	ecKID     string
	jwks      *httptest.Server
	jwksHits  atomic.Int64
	jwksDown  atomic.Bool
	intro     *httptest.Server
	mu        sync.Mutex
	revoked   map[string]bool
	introHits atomic.Int64
	accept    atomic.Value // the caller token introspection accepts
	tokenFile string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{t: t, revoked: map[string]bool{}, tokenFile: filepath.Join(t.TempDir(), "token")}
	f.rotateCallerToken("caller-token-1")
	_, f.ed, _ = ed25519.GenerateKey(rand.Reader)
	f.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jwk.NewSet()
	for _, k := range []struct {
		priv any
		alg  jwa.SignatureAlgorithm
		kid  *string
	}{{f.ed, jwa.EdDSA, &f.edKID}, {f.ec, jwa.ES256, &f.ecKID}} {
		pk, err := jwk.FromRaw(k.priv)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := pk.PublicKey()
		tp, _ := pub.Thumbprint(cryptoSHA256)
		*k.kid = b64url(tp)
		_ = pub.Set(jwk.KeyIDKey, *k.kid)
		_ = pub.Set(jwk.AlgorithmKey, k.alg)
		_ = set.AddKey(pub)
	}
	body, _ := json.Marshal(set)
	f.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.jwksHits.Add(1)
		if f.jwksDown.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(f.jwks.Close)
	f.issuer = f.jwks.URL
	f.intro = httptest.NewServer(http.HandlerFunc(f.introspect))
	t.Cleanup(f.intro.Close)
	return f
}

// introspect answers RFC 7662: active unless the token's jti is revoked.
// It reads the jti from the token unverified, as a test double of the
// enforcer's own endpoint may: the backend verified the token before.
func (f *fleet) introspect(w http.ResponseWriter, r *http.Request) {
	f.introHits.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+f.accept.Load().(string) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, `{"error":"invalid_client","code":"token_invalid"}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("token") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	msg, err := jws.Parse([]byte(r.PostForm.Get("token")))
	var c struct {
		JTI string `json:"jti"`
	}
	if err != nil || json.Unmarshal(msg.Payload(), &c) != nil {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	f.mu.Lock()
	active := !f.revoked[c.JTI]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "jti": c.JTI})
}

// rotateCallerToken writes tok to the token file, as a kubelet rotates a
// projected token, and has introspection accept only it.
func (f *fleet) rotateCallerToken(tok string) {
	if err := os.WriteFile(f.tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.accept.Store(tok)
}

func (f *fleet) revoke(jti string) {
	f.mu.Lock()
	f.revoked[jti] = true
	f.mu.Unlock()
}

const audience = "https://files.test"

// claims are a credential's claims as the enforcer mints them.
func (f *fleet) claims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": f.issuer, "sub": "user:alice", "aud": audience, "scope": "files.read",
		"tenant": "acme", "task_id": "task-1", "session_id": "s-1", "act": map[string]any{"sub": "agent:planner"},
		"jti": "jti-" + time.Now().Format("150405.000000000"), "iat": now, "nbf": now, "exp": now + 300}
}

// sign signs claims with the fleet's Ed25519 key, typ at+jwt, kid its
// thumbprint; edit may change the protected headers.
func (f *fleet) sign(claims map[string]any, edit func(jws.Headers)) string {
	f.t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "at+jwt")
	_ = h.Set(jws.KeyIDKey, f.edKID)
	if edit != nil {
		edit(h)
	}
	raw, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA, f.ed, jws.WithProtectedHeaders(h)))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(raw)
}

// config is the backend's configuration against f.
func (f *fleet) config() backend.Config {
	return backend.Config{Issuer: f.issuer, Audience: audience, Tenant: "acme", Name: "files", IntrospectionURL: f.intro.URL,
		IntrospectionTokenFile: f.tokenFile, Keys: backend.KeysConfig{MinRefresh: time.Hour}}
}

// served is a backend's handler: it answers 200 with the subject of the
// credential the middleware let through.
func served() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := backend.CredentialFrom(r.Context())
		if !ok {
			http.Error(w, "no credential", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("served " + c.Subject + " " + c.JTI))
	})
}

// answer is what the middleware answered.
type answer struct {
	status int
	code   string
	body   string
}

func call(t *testing.T, h http.Handler, edit func(*http.Request)) answer {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://files.test/read?x=1", nil)
	if edit != nil {
		edit(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{status: w.Code, body: w.Body.String()}
	var b struct {
		Code string `json:"code"`
	}
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatalf("refusal body %q is not JSON: %v", w.Body.String(), err)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("refusal content type %q", ct)
		}
	}
	a.code = b.Code
	return a
}

func withBearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

const cryptoSHA256 = crypto.SHA256

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
