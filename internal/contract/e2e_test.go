package contract

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/backend"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

const filesAudience = "https://files.test"

// rig is an enforcer's credentials side (its minter, its JWKS on
// loopback, an introspection endpoint), a real JetStream with the events
// stream and the revocations bucket, and a tool server behind the
// middleware.
type rig struct {
	t        testing.TB
	nats     *natstest.Server
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	minter   *credential.Minter
	issuer   string
	v        *backend.Verifier
	h        http.Handler
	active   atomic.Bool // what introspection answers
	introHit atomic.Int64
}

func newRig(t testing.TB, cfg func(*backend.Config)) *rig {
	t.Helper()
	r := &rig{t: t, nats: natstest.Run(t)}
	r.active.Store(true)
	r.js = r.nats.JetStream()
	ctx := context.Background()
	if _, err := stream.Ensure(ctx, r.js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	kv, err := r.js.CreateOrUpdateKeyValue(ctx, stream.RevocationsConfig(stream.Defaults(), 2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r.kv = kv
	mux := http.NewServeMux()
	enf := httptest.NewServer(mux)
	t.Cleanup(enf.Close)
	r.issuer = enf.URL
	r.minter, err = credential.New(credential.Config{Issuer: r.issuer, KeyFile: keyFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("GET /.well-known/jwks.json", r.minter.Keys().Handler())
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, req *http.Request) {
		r.introHit.Add(1)
		if req.Header.Get("Authorization") != "Bearer files-workload-token" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]bool{"active": r.active.Load()})
	})
	tokenFile := filepath.Join(t.TempDir(), "files-token")
	if err := os.WriteFile(tokenFile, []byte("files-workload-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := backend.Config{Issuer: r.issuer, Audience: filesAudience, Tenant: "acme", Name: "files", IntrospectionURL: enf.URL + "/introspect",
		IntrospectionTokenFile: tokenFile}
	if cfg != nil {
		cfg(&c)
	}
	r.v, err = backend.New(c, backend.WithJetStream(r.js))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.v.Close() })
	r.h = r.v.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("file")) }))
	poll.Until(t, 10*time.Second, func() error {
		if !r.v.RevocationsReady() {
			return fmt.Errorf("revocations bucket not yet watched")
		}
		return nil
	})
	return r
}

func keyFile(t testing.TB) string {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
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

// mint is a credential the enforcer's own minter signs for task.
func (r *rig) mint(task string) credential.Token {
	r.t.Helper()
	tok, err := r.minter.Mint(&credential.Request{Tenant: "acme", Issuer: "https://idp", Subject: "user:alice",
		Chain: []event.Actor{{Subject: "agent:planner"}}, TaskID: task, SessionID: "s-1", Audience: filesAudience,
		Scope: []string{"files.read"}, TTL: 10 * time.Minute})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// call sends one request with tok and the request id, from client.
func (r *rig) call(tok, requestID, client string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://files.test/read", nil)
	req.RemoteAddr = client
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if requestID != "" {
		req.Header.Set(backend.HeaderRequestID, requestID)
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	var body struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body.Code
}

func (r *rig) revoke(key string, rev stream.Revocation) {
	r.t.Helper()
	b, _ := json.Marshal(rev)
	if _, err := r.kv.Put(context.Background(), key, b); err != nil {
		r.t.Fatal(err)
	}
}

// TestRevocationsRefusedEndToEnd: a credential the enforcer minted is
// served until its jti, or its task, is written to the revocations
// bucket; then refused with credential_revoked or task_ended; served
// again once the record is deleted. Every request is on the record as a
// backend_request event that schema decodes.
func TestRevocationsRefusedEndToEnd(t *testing.T) {
	r := newRig(t, nil)
	a, b := r.mint("task-a"), r.mint("task-b")
	if s, code := r.call(a.Raw, "req-1", "127.0.0.1:1000"); s != 200 {
		t.Fatalf("fresh credential: %d %s", s, code)
	}
	r.revoke(stream.JTIRevocationKey(a.JTI), stream.Revocation{Tenant: "acme", TaskID: "task-a", JTI: a.JTI, Reason: "revoked", RevokedAt: time.Now(), Until: a.Expires})
	poll.Until(t, 10*time.Second, func() error {
		if s, code := r.call(a.Raw, "req-2", "127.0.0.1:1000"); code != backend.CodeCredentialRevoked {
			return fmt.Errorf("revoked jti answered %d %q", s, code)
		}
		return nil
	})
	if s, code := r.call(b.Raw, "req-3", "127.0.0.1:1000"); s != 200 {
		t.Fatalf("another task's credential: %d %s", s, code)
	}
	r.revoke(stream.TaskRevocationKey("acme", "task-b"), stream.Revocation{Tenant: "acme", TaskID: "task-b", Reason: "completed", RevokedAt: time.Now()})
	poll.Until(t, 10*time.Second, func() error {
		if s, code := r.call(b.Raw, "req-4", "127.0.0.1:1000"); code != backend.CodeTaskEnded {
			return fmt.Errorf("ended task answered %d %q", s, code)
		}
		return nil
	})
	// Another tenant's task of the same name ending ends nothing here.
	c := r.mint("task-c")
	r.revoke(stream.TaskRevocationKey("globex", "task-c"), stream.Revocation{Tenant: "globex", TaskID: "task-c", Reason: "completed", RevokedAt: time.Now()})
	if err := r.kv.Delete(context.Background(), stream.JTIRevocationKey(a.JTI)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() error {
		if s, code := r.call(a.Raw, "req-5", "127.0.0.1:1000"); s != 200 {
			return fmt.Errorf("jti no longer revoked answered %d %q", s, code)
		}
		return nil
	})
	if s, code := r.call(c.Raw, "req-6", "127.0.0.1:1000"); s != 200 {
		t.Fatalf("globex's task-c ended acme's: %d %s", s, code)
	}
	if n := r.introHit.Load(); n != 0 {
		t.Errorf("introspection asked %d times while the bucket was watched", n)
	}

	poll.Until(t, 10*time.Second, func() error {
		if s := r.v.Stats(); s.Pending != 0 {
			return fmt.Errorf("%d reports pending", s.Pending)
		}
		return nil
	})
	evs := natstest.AllEvents(t, r.nats.URL(), "rampart.v1.acme.backend_request")
	if len(evs) < 6 {
		t.Fatalf("%d backend_request events, want at least 6", len(evs))
	}
	byReq := map[string]*event.Event{}
	for _, e := range evs {
		if e.Kind != event.KindBackendRequest || e.Instance != "backend:files" || e.Backend.Audience != filesAudience || e.Backend.Client != "127.0.0.1:1000" {
			t.Fatalf("report %+v %+v", e, e.Backend)
		}
		byReq[e.RequestID] = e
	}
	for req, want := range map[string]struct {
		jti    string
		status int
		code   string
	}{"req-1": {a.JTI, 200, ""}, "req-2": {a.JTI, 401, "credential_revoked"}, "req-3": {b.JTI, 200, ""}, "req-4": {b.JTI, 401, "task_ended"}, "req-6": {c.JTI, 200, ""}} {
		e := byReq[req]
		if e == nil || e.Backend.JTI != want.jti || e.Backend.Status != want.status || e.Backend.Code != want.code || e.Identity.Subject != "user:alice" || e.Tenant != "acme" {
			t.Errorf("report of %s: %+v, want %+v", req, e, want)
		}
	}
	if e := byReq["req-1"]; e.Identity.TaskID != "task-a" || len(e.Identity.Chain) != 1 || e.Identity.Chain[0].Subject != "agent:planner" {
		t.Errorf("report of req-1 identity %+v", e.Identity)
	}
}

// TestNATSDownFallsBackToIntrospection: with NATS gone, the bucket's copy
// is not trusted: credentials are checked by introspection (and refused
// when it says inactive); reports wait in the buffer and reach JetStream
// once NATS is back.
func TestNATSDownFallsBackToIntrospection(t *testing.T) {
	r := newRig(t, nil)
	tok := r.mint("task-a")
	r.nats.Shutdown()
	r.nats.WaitForShutdown()
	poll.Until(t, 10*time.Second, func() error {
		if r.v.RevocationsReady() {
			return fmt.Errorf("revocations still trusted with NATS down")
		}
		return nil
	})
	if s, code := r.call(tok.Raw, "req-1", "127.0.0.1:1000"); s != 200 || r.introHit.Load() != 1 {
		t.Fatalf("NATS down: answered %d %q after %d introspections", s, code, r.introHit.Load())
	}
	r.active.Store(false)
	if s, code := r.call(tok.Raw, "req-2", "127.0.0.1:1000"); code != backend.CodeCredentialRevoked {
		t.Fatalf("introspection inactive: answered %d %q", s, code)
	}
	if s := r.v.Stats(); s.Reported != 0 {
		t.Fatalf("reported %d with NATS down", s.Reported)
	}
	r.nats.Restart()
	poll.Until(t, 30*time.Second, func() error {
		if s := r.v.Stats(); s.Reported != 2 || s.Dropped != 0 {
			return fmt.Errorf("stats %+v, want both reports made", s)
		}
		return nil
	})
	evs := natstest.AllEvents(t, r.nats.URL(), "rampart.v1.acme.backend_request")
	if len(evs) != 2 || evs[0].RequestID != "req-1" || evs[1].Backend.Code != "credential_revoked" {
		t.Fatalf("after NATS came back: %d events %+v", len(evs), evs)
	}
	poll.Until(t, 30*time.Second, func() error {
		if !r.v.RevocationsReady() {
			return fmt.Errorf("revocations not watched again")
		}
		return nil
	})
}

// TestReportBufferBoundsAndCountsDrops: with NATS down and a buffer of
// two, serving goes on (fail-open) and what the buffer cannot hold is
// counted dropped, never waited for.
func TestReportBufferBoundsAndCountsDrops(t *testing.T) {
	r := newRig(t, func(c *backend.Config) { c.Report.Buffer = 2 })
	tok := r.mint("task-a")
	r.nats.Shutdown()
	r.nats.WaitForShutdown()
	for i := range 6 {
		if s, code := r.call(tok.Raw, fmt.Sprint("req-", i), "127.0.0.1:1000"); s != 200 {
			t.Fatalf("request %d: %d %q", i, s, code)
		}
		if i == 0 { // the first report taken up by the publisher
			poll.Until(t, 10*time.Second, func() error {
				if p := r.v.Stats().Pending; p != 0 {
					return fmt.Errorf("%d pending", p)
				}
				return nil
			})
		}
	}
	// One in flight, two buffered, three dropped.
	if s := r.v.Stats(); s.Dropped != 3 || s.Pending != 2 {
		t.Fatalf("stats %+v, want 3 dropped and 2 pending", s)
	}
}

// TestReportNamesOneRequestIDOnly: the report carries the enforcer's
// request id only when exactly one, of a sane length, came: two headers
// or an oversized one are no enforcer's, and are reported as none, which
// backend-bypass flags.
func TestReportNamesOneRequestIDOnly(t *testing.T) {
	r := newRig(t, nil)
	tok := r.mint("task-a")
	send := func(ids ...string) {
		req := httptest.NewRequest(http.MethodGet, "http://files.test/read", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Raw)
		for _, id := range ids {
			req.Header.Add(backend.HeaderRequestID, id)
		}
		w := httptest.NewRecorder()
		r.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("answered %d %s", w.Code, w.Body)
		}
	}
	send("req-one")
	send("req-a", "req-b")
	send(strings.Repeat("r", 129))
	poll.Until(t, 10*time.Second, func() error {
		if s := r.v.Stats(); s.Reported != 3 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	var got []string
	for _, e := range natstest.AllEvents(t, r.nats.URL(), "rampart.v1.acme.backend_request") {
		got = append(got, e.RequestID)
	}
	if want := []string{"req-one", "", ""}; !slices.Equal(got, want) {
		t.Fatalf("reported request ids %q, want %q", got, want)
	}
}
