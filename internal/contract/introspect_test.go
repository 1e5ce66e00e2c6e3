package contract

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/backend"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// brokerPolicy lets the orchestrator exchange and revoke the files
// backend's credentials, and the files backend's own workload introspect
// them: no one else.
const brokerPolicy = `id: contract-broker
rules:
  - id: exchange-files
    match: 'destination == "rampart.token" && tenant == "acme" && args.audience == "https://files.test"'
    condition: 'subject == "svc:orchestrator"'
    effect: allow
    obligations: {credential: {audience: "https://files.test", scope: [files.read], ttl: 10m}}
  - id: introspect-files
    match: 'destination == "rampart.introspect" && tenant == "acme" && subject == "svc:files" && args.audience == "https://files.test"'
    effect: allow
  - id: revoke-files
    match: 'destination == "rampart.revoke" && tenant == "acme" && subject == "svc:orchestrator" && args.audience == "https://files.test"'
    effect: allow
`

// liveEnforcer is a real enforcer, its credential broker served on
// loopback, recording to a real JetStream.
type liveEnforcer struct {
	url  string
	nats *natstest.Server
	idp  jwk.Key // signs the identity tokens the enforcer accepts
}

func startEnforcer(t *testing.T) *liveEnforcer {
	t.Helper()
	le := &liveEnforcer{nats: natstest.Run(t)}
	dir := t.TempDir()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	le.idp, _ = jwk.FromRaw(raw)
	_ = le.idp.Set(jwk.KeyIDKey, "idp-1")
	pub, _ := le.idp.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	for name, body := range map[string][]byte{"jwks.json": jwks, "policy.yaml": []byte(brokerPolicy)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a broker call was forwarded upstream")
	}))
	t.Cleanup(upstream.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	le.url = "http://" + ln.Addr().String()
	e, err := enforcer.New(context.Background(), enforcer.Config{
		Listen: "127.0.0.1:0", Upstream: upstream.URL, Instance: "enf-contract",
		PolicyFile:  filepath.Join(dir, "policy.yaml"),
		Identity:    identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: "https://idp.test", Audience: "rampart", JWKSFile: filepath.Join(dir, "jwks.json")}},
		NATS:        audit.Config{URL: stream.URLs(le.nats.URL()), PublishTimeout: 2 * time.Second},
		Credentials: credential.Config{Issuer: le.url, KeyFile: keyFile(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, enforcer.Listeners{HTTP: ln}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return le
}

// token is an identity token of tenant acme for sub, as the IdP signs it;
// edit changes its claims.
func (le *liveEnforcer) token(t *testing.T, sub string, edit func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{"iss": "https://idp.test", "aud": "rampart", "sub": sub, "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()}
	if edit != nil {
		edit(claims)
	}
	payload, _ := json.Marshal(claims)
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES256, le.idp))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// broker posts form to a broker endpoint as caller and decodes the answer.
func (le *liveEnforcer) broker(t *testing.T, path, caller string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, le.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+caller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body
}

// introspections are the enforcer's recorded decisions on introspection
// calls, in order.
func (le *liveEnforcer) introspections(t *testing.T) []*event.Decision {
	t.Helper()
	var out []*event.Decision
	for _, e := range natstest.AllEvents(t, le.nats.URL()) {
		if e.Kind == event.KindDecision && e.Request != nil && e.Request.Destination == enforcer.DestinationIntrospect {
			out = append(out, e.Decision)
		}
	}
	return out
}

// TestIntrospectionFallbackAgainstEnforcer: a backend that cannot reach
// NATS checks credentials with the real enforcer's introspection endpoint,
// authenticated as its own workload (a token file). A live credential is
// served, a revoked one refused; an introspection caller the enforcer
// cannot authenticate gets no answer, and the backend fails closed (503
// revocation_unavailable); one policy does not allow is told nothing live
// (RFC 7662 §2.2), so the credential is refused too. The enforcer records
// every one of those introspections.
func TestIntrospectionFallbackAgainstEnforcer(t *testing.T) {
	le := startEnforcer(t)
	orch := le.token(t, "svc:orchestrator", nil)

	// The backend's own NATS: its watch is live, then NATS goes away.
	bn := natstest.Run(t)
	bjs := bn.JetStream()
	if _, err := bjs.CreateOrUpdateKeyValue(context.Background(), stream.RevocationsConfig(stream.Defaults(), time.Hour)); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "files-token")
	writeToken := func(tok string) {
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken(le.token(t, "svc:files", nil))
	verifier := func() (*backend.Verifier, http.Handler) {
		v, err := backend.New(backend.Config{Issuer: le.url, Audience: filesAudience, Tenant: "acme", Name: "files",
			IntrospectionURL: le.url + enforcer.IntrospectPath, IntrospectionTokenFile: tokenFile}, backend.WithJetStream(bjs))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		return v, v.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("file")) }))
	}
	v, h := verifier()
	poll.Until(t, 10*time.Second, func() error {
		if !v.RevocationsReady() {
			return fmt.Errorf("revocations not yet watched")
		}
		return nil
	})
	bn.Shutdown()
	bn.WaitForShutdown()
	poll.Until(t, 10*time.Second, func() error {
		if v.RevocationsReady() {
			return fmt.Errorf("revocations still trusted with NATS down")
		}
		return nil
	})

	exchange := func() string {
		t.Helper()
		status, body := le.broker(t, enforcer.TokenPath, orch, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {le.token(t, "user:alice", nil)}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"audience": {filesAudience}})
		tok, _ := body["access_token"].(string)
		if status != http.StatusOK || tok == "" {
			t.Fatalf("exchange: %d %v", status, body)
		}
		return tok
	}
	serve := func(h http.Handler, tok string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "http://files.test/read", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var body struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body.Code
	}

	live := exchange()
	if s, code := serve(h, live); s != http.StatusOK {
		t.Fatalf("a live credential, introspected by the backend's workload: %d %q", s, code)
	}
	revoked := exchange()
	if s, body := le.broker(t, enforcer.RevokePath, orch, url.Values{"token": {revoked}}); s != http.StatusOK {
		t.Fatalf("revoke: %d %v", s, body)
	}
	if s, code := serve(h, revoked); s != http.StatusUnauthorized || code != backend.CodeCredentialRevoked {
		t.Fatalf("a revoked credential: %d %q", s, code)
	}

	// In order: the record below is read in the same order.
	for _, tc := range []struct {
		name   string
		caller string
		status int
		code   string
	}{
		{"unauthenticated caller", "not-a-token", http.StatusServiceUnavailable, backend.CodeRevocationUnavailable},
		{"expired caller", le.token(t, "svc:files", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), http.StatusServiceUnavailable, backend.CodeRevocationUnavailable},
		{"unauthorised caller", le.token(t, "svc:billing", nil), http.StatusUnauthorized, backend.CodeCredentialRevoked},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			writeToken(tc.caller)
			_, h := verifier() // reads the token file afresh
			if s, code := serve(h, live); s != tc.status || code != tc.code {
				t.Fatalf("live credential, introspected as %s: %d %q, want %d %q", name, s, code, tc.status, tc.code)
			}
		})
	}

	// On the record: the live one allowed by introspect-files, the
	// revoked one inactive, the two callers not authenticated refused
	// with their identity codes, the one not allowed denied by policy.
	poll.Until(t, 10*time.Second, func() error {
		ds := le.introspections(t)
		if len(ds) != 5 {
			return fmt.Errorf("%d introspections recorded, want 5", len(ds))
		}
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%s/%s/%s", d.Effect, d.RuleID, d.Code))
		}
		want := []string{"allow/introspect-files/", "deny//" + enforcer.CodeTokenInactive, "deny//token_malformed", "deny//token_expired", "deny/default-deny/"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("introspections recorded %q, want %q", got, want)
		}
		return nil
	})
}
