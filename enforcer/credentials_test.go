package enforcer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/poll"
)

const credIssuer = "http://127.0.0.1"

// credentialKey writes a fresh Ed25519 signing key into dir.
func credentialKey(t *testing.T, dir string) string {
	t.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f := filepath.Join(dir, "cred-"+strings.ReplaceAll(t.Name(), "/", "_")+".pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// withCredentials has every call to the upstream carry a minted
// credential for audience https://tools.test, except calls of the tool
// "read_file", whose destination carries the caller's own.
func withCredentials(t *testing.T) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) { credentialsConfig(t, h, c) }
}

func credentialsConfig(t *testing.T, h *harness, c *enforcer.Config) {
	c.Credentials = credential.Config{Issuer: credIssuer, KeyFile: credentialKey(t, h.dir)}
	c.Destinations = destination.Config{
		Rules:   []destination.Rule{{Match: destination.Match{Tool: "read_file"}, Destination: "files", DataClass: "internal"}},
		Default: destination.Target{Destination: "tools", DataClass: "internal", Credential: &credential.Spec{Audience: "https://tools.test"}},
	}
}

// fetchJWKS reads the key set the enforcer serves.
func (h *harness) fetchJWKS(t *testing.T) jwk.Set {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), h.url+credential.JWKSPath)
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	return set
}

// The caller's token and every other credential it sends, in any
// spelling, never reach a backend whose destination gets a minted
// credential: the backend sees exactly one Authorization, the minted
// token, which verifies against the enforcer's JWKS.
func TestMintedCredentialReplacesCallersCredentials(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t))
	agent := h.token(t)
	secret := "agent-secret-cookie"
	raw := postHost("/mcp", "tools.test", agent,
		"Proxy-Authorization: Basic "+secret+"\r\n",
		"Cookie: sid="+secret+"\r\n",
		"cookie: other="+secret+"\r\n",
		"X-API-KEY: "+secret+"\r\n",
		"x-auth-token: "+secret+"\r\n",
		"Agent-Task-Id: task-1\r\n")
	resp, body, _ := h.rawRequest(t, raw)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %v", resp.StatusCode, body)
	}
	up := h.lastUpstream()
	for k, vs := range up {
		for _, v := range vs {
			if strings.Contains(v, agent[:40]) || strings.Contains(v, secret) {
				t.Errorf("the caller's credential reached the backend in %s: %q", k, v)
			}
		}
	}
	if got := up.Values("Authorization"); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ") {
		t.Fatalf("backend Authorization %q, want one minted bearer token", got)
	}
	minted := strings.TrimPrefix(up.Get("Authorization"), "Bearer ")
	tok, err := jwt.ParseString(minted, jwt.WithKeySet(h.fetchJWKS(t)), jwt.WithIssuer(credIssuer), jwt.WithAudience("https://tools.test"))
	if err != nil {
		t.Fatalf("minted token does not verify against the enforcer's JWKS: %v", err)
	}
	if tok.Subject() != "user:alice" || tok.PrivateClaims()["task_id"] != "task-1" || tok.PrivateClaims()["scope"] != "search" {
		t.Errorf("sub %q claims %v", tok.Subject(), tok.PrivateClaims())
	}
	if act, _ := tok.PrivateClaims()["act"].(map[string]any); act["sub"] != "agent:planner" {
		t.Errorf("act %v, want the caller's actor", act)
	}
	id := resp.Header.Get(enforcer.HeaderRequestID)
	evs := h.events(t, id, event.KindDecision, event.KindCredential)
	d, c := evs[event.KindDecision], evs[event.KindCredential]
	if d.Decision.CredentialJTI != tok.JwtID() || c.Credential.JTI != tok.JwtID() {
		t.Errorf("decision jti %q, credential event jti %q, token jti %q", d.Decision.CredentialJTI, c.Credential.JTI, tok.JwtID())
	}
	if c.Credential.Action != event.CredentialIssued || c.Credential.Audience != "https://tools.test" || c.Identity.TaskID != "task-1" ||
		!c.Credential.Expires.Equal(tok.Expiration()) || c.Credential.KeyID == "" {
		t.Errorf("credential event %+v identity %+v", c.Credential, c.Identity)
	}
	if c.Epoch != d.Epoch || c.Seq <= d.Seq || c.Prev == "" {
		t.Errorf("credential event not chained after its decision: seq %d after %d, prev %q", c.Seq, d.Seq, c.Prev)
	}
}

// A busy task reuses its credential; another principal, task or scope
// never gets it, and a destination without a credential spec gets the
// caller's own token as before.
func TestCredentialCachedPerTaskNeverShared(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t))
	alice, bob := http.Header{"Authorization": {"Bearer " + h.token(t)}}, http.Header{"Authorization": {"Bearer " + h.tokenFor(t, "user:bob")}}
	jtiOf := func(name string, hdr http.Header, tool string) string {
		t.Helper()
		r := h.post(t, toolCall(tool, `{}`), hdr)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %v", name, r.status, r.body)
		}
		return h.events(t, r.requestID, event.KindDecision)[event.KindDecision].Decision.CredentialJTI
	}
	first := jtiOf("alice t-1", withHeader(alice, "Agent-Task-Id", "t-1"), "search")
	if first == "" {
		t.Fatal("no credential recorded")
	}
	if again := jtiOf("alice t-1 again", withHeader(alice, "Agent-Task-Id", "t-1"), "search"); again != first {
		t.Errorf("the same task minted again (%s, then %s)", first, again)
	}
	seen := map[string]string{first: "alice t-1"}
	for name, c := range map[string]struct {
		hdr  http.Header
		tool string
	}{
		"alice t-2":  {withHeader(alice, "Agent-Task-Id", "t-2"), "search"},
		"bob t-3":    {withHeader(bob, "Agent-Task-Id", "t-3"), "search"},
		"alice none": {alice, "search"},
	} {
		j := jtiOf(name, c.hdr, c.tool)
		if prev, dup := seen[j]; dup {
			t.Errorf("%s got the credential minted for %s", name, prev)
		}
		seen[j] = name
	}
	// Bob cannot reach alice's task, nor so its credential.
	if r := h.post(t, toolCall("search", `{}`), withHeader(bob, "Agent-Task-Id", "t-1")); r.status != http.StatusForbidden {
		t.Errorf("bob in alice's task: %d", r.status)
	}
	// One credential event per mint, none for reuse.
	var issued int
	for _, e := range h.eventsAll(t) {
		if e.Kind == event.KindCredential {
			issued++
		}
	}
	if issued != len(seen) {
		t.Errorf("%d credential events for %d credentials", issued, len(seen))
	}
	// read_file's destination asks for no credential: the caller's token
	// goes on, and no jti is recorded.
	if j := jtiOf("files", alice, "read_file"); j != "" {
		t.Errorf("a destination without a credential recorded jti %s", j)
	}
	if got := h.lastUpstream().Get("Authorization"); got != alice.Get("Authorization") {
		t.Errorf("without a credential spec the backend got %q", got)
	}
}

func TestCredentialConfigRefused(t *testing.T) {
	dir := t.TempDir()
	key := credentialKey(t, dir)
	spec := &credential.Spec{Audience: "https://tools.test"}
	for name, tc := range map[string]struct {
		edit func(c *enforcer.Config)
		want string
	}{
		"spec without credentials": {func(c *enforcer.Config) { c.Destinations.Default.Credential = spec }, "needs the credentials section"},
		"forward_auth mode": {func(c *enforcer.Config) {
			c.Credentials = credential.Config{Issuer: credIssuer, KeyFile: key}
			c.Modes = []string{enforcer.ModeProxy, enforcer.ModeForwardAuth}
		}, "only proxy mode"},
		"ttl above max_ttl": {func(c *enforcer.Config) {
			c.Credentials = credential.Config{Issuer: credIssuer, KeyFile: key, MaxTTL: time.Minute}
			c.Destinations.Default.Credential = &credential.Spec{Audience: "a", TTL: time.Hour}
		}, "above credentials.max_ttl"},
		"bad scope": {func(c *enforcer.Config) {
			c.Credentials = credential.Config{Issuer: credIssuer, KeyFile: key}
			c.Destinations.Rules = []destination.Rule{{Match: destination.Match{Tool: "x"}, Destination: "d", DataClass: "c",
				Credential: &credential.Spec{Audience: "a", Scope: []string{"a b"}}}}
		}, "not a scope token"},
	} {
		t.Run(name, func(t *testing.T) {
			c := enforcer.Config{Upstream: "http://127.0.0.1:1", Instance: "i", PolicyFile: "p"}
			tc.edit(&c)
			c.SetDefaults()
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

const credentialPolicy = `id: cred
rules:
  - id: files
    match: 'tool == "read_file" && tenant == "acme"'
    effect: allow
    obligations: {credential: {audience: "https://files.test", scope: [files.read], ttl: 1m}}
  - id: search
    match: 'tool == "search" && tenant == "acme"'
    effect: allow
`

func withCredentialPolicy(t *testing.T) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		c.PolicyFile = filepath.Join(h.dir, "cred-policy.yaml")
		if err := os.WriteFile(c.PolicyFile, []byte(credentialPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// The deciding rule's credential is put on its calls, over the
// destination's (read_file's destination asks for none).
func TestRuleCredentialObligation(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t), withCredentialPolicy(t))
	agent := "Bearer " + h.token(t)
	r := h.post(t, toolCall("read_file", `{}`), http.Header{"Authorization": {agent}})
	if r.status != http.StatusOK {
		t.Fatalf("%d %v", r.status, r.body)
	}
	got := h.lastUpstream().Get("Authorization")
	if got == agent {
		t.Fatal("the caller's token reached the backend")
	}
	tok, err := jwt.ParseString(strings.TrimPrefix(got, "Bearer "), jwt.WithKeySet(h.fetchJWKS(t)), jwt.WithAudience("https://files.test"))
	if err != nil {
		t.Fatalf("the rule's credential: %v", err)
	}
	if tok.PrivateClaims()["scope"] != "files.read" || tok.Expiration().Sub(tok.IssuedAt()) != time.Minute {
		t.Errorf("scope %v, lifetime %s", tok.PrivateClaims()["scope"], tok.Expiration().Sub(tok.IssuedAt()))
	}
	if d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]; d.Decision.CredentialJTI != tok.JwtID() {
		t.Errorf("decision jti %q, token %q", d.Decision.CredentialJTI, tok.JwtID())
	}
}

// A rule that asks for a credential where none can be minted (no
// credentials section) refuses the call, recorded, rather than send the
// caller's own token on.
func TestRuleCredentialWithoutCredentialsFailsClosed(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentialPolicy(t))
	before := h.hits.Load()
	r := h.post(t, toolCall("read_file", `{}`), http.Header{"Authorization": {"Bearer " + h.token(t)}})
	if r.status != http.StatusServiceUnavailable || errorCode(r) != "credential_unavailable" || h.hits.Load() != before {
		t.Fatalf("status %d code %q, backend hits %d", r.status, errorCode(r), h.hits.Load()-before)
	}
	d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if d.Decision.Effect != event.EffectDeny || d.Decision.Code != "credential_unavailable" {
		t.Errorf("recorded %+v", d.Decision)
	}
	// A call whose rule asks for none is unaffected.
	if r := h.post(t, toolCall("search", `{}`), http.Header{"Authorization": {"Bearer " + h.token(t)}}); r.status != http.StatusOK {
		t.Errorf("search: %d", r.status)
	}
}

// A credential whose issue could not be recorded is never used: the call
// is refused, and the token is not cached, so the next call of the task
// mints (and records) its own. Every jti a stored decision names has its
// issue stored too.
func TestUnrecordedCredentialIsNeverReused(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, withCredentials(t))
	alice := http.Header{"Authorization": {"Bearer " + h.token(t)}, "Agent-Task-Id": {"t-1"}}
	h.nats.Shutdown()
	h.nats.WaitForShutdown()
	if r := h.post(t, toolCall("search", `{}`), alice); r.status != http.StatusServiceUnavailable || errorCode(r) != "audit_unavailable" || h.hits.Load() != 0 {
		t.Fatalf("with JetStream down: %d %v, backend hits %d", r.status, r.body, h.hits.Load())
	}
	h.nats.Restart()
	poll.Until(t, 15*time.Second, func() error {
		if r := h.post(t, toolCall("search", `{}`), alice); r.status != http.StatusOK {
			return fmt.Errorf("no call allowed after JetStream came back: %d %v", r.status, r.body)
		}
		return nil
	})
	issued := map[string]bool{}
	var named []string
	for _, e := range h.eventsAll(t) {
		switch {
		case e.Kind == event.KindCredential:
			issued[e.Credential.JTI] = true
		case e.Kind == event.KindDecision && e.Decision.CredentialJTI != "":
			named = append(named, e.Decision.CredentialJTI)
		}
	}
	if len(named) == 0 {
		t.Fatal("no stored decision names a credential")
	}
	for _, j := range named {
		if !issued[j] {
			t.Errorf("a stored decision names credential %s, whose issue the record lacks", j)
		}
	}
}

// A credential never outlives the caller's own token: minted under a token
// that expires in 90s, it expires with it, not after its 5m ttl.
func TestCredentialEndsWithCallersToken(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t))
	exp := time.Now().Add(90 * time.Second).Truncate(time.Second)
	agent := h.tokenWith(t, func(c map[string]any) { c["exp"] = exp.Unix() })
	r := h.post(t, toolCall("search", `{}`), http.Header{"Authorization": {"Bearer " + agent}})
	if r.status != http.StatusOK {
		t.Fatalf("%d %v", r.status, r.body)
	}
	tok, err := jwt.ParseString(strings.TrimPrefix(h.lastUpstream().Get("Authorization"), "Bearer "), jwt.WithKeySet(h.fetchJWKS(t)))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expiration().Equal(exp) {
		t.Errorf("credential exp %v, want the caller's token's %v", tok.Expiration(), exp)
	}
}

// Concurrent first calls of one task share one credential: minting is
// single-flight per task, audience and scope, so a burst does not mint
// (and record, and hand to the backend) a credential per racing call.
func TestConcurrentCallsMintOneCredential(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t))
	hdr := withHeader(http.Header{"Authorization": {"Bearer " + h.token(t)}}, "Agent-Task-Id", "t-burst")
	const n = 16
	jtis := make(chan string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			r := h.post(t, toolCall("search", `{}`), hdr)
			if r.status != http.StatusOK {
				t.Errorf("burst call: %d %v", r.status, r.body)
				return
			}
			jtis <- h.events(t, r.requestID, event.KindDecision)[event.KindDecision].Decision.CredentialJTI
		})
	}
	close(start)
	wg.Wait()
	close(jtis)
	seen := map[string]int{}
	for j := range jtis {
		seen[j]++
	}
	var issued int
	for _, e := range h.eventsAll(t) {
		if e.Kind == event.KindCredential && e.Credential.Action == event.CredentialIssued {
			issued++
		}
	}
	if len(seen) != 1 || issued != 1 {
		t.Fatalf("%d concurrent calls of one task carried %d credentials (%v), %d issued events; want 1 and 1", n, len(seen), seen, issued)
	}
}
