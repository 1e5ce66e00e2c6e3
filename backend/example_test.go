package backend_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/backend"
)

// A tool server wraps its handler in the middleware. In production the
// enforcer serves the JWKS and introspection, and WithJetStream gives the
// revocations watch and the reports; here small loopback servers stand in
// for the enforcer so the example runs alone.
func ExampleVerifier_Wrap() {
	enforcer, mint := exampleEnforcer()
	defer enforcer.Close()
	tokenFile := filepath.Join(os.TempDir(), "rampart-example-token")
	_ = os.WriteFile(tokenFile, []byte("files-workload-token\n"), 0o600)
	defer os.Remove(tokenFile)

	v, err := backend.New(backend.Config{
		Issuer:           enforcer.URL, // the enforcer's credentials.issuer
		Audience:         "https://files.example",
		Tenant:           "acme",
		IntrospectionURL: enforcer.URL + "/_rampart/introspect",
		// The backend's own identity for introspection, which the
		// enforcer authenticates and its policy governs (destination
		// rampart.introspect); in Kubernetes, a projected service account
		// token, re-read whenever the enforcer answers 401.
		IntrospectionTokenFile: tokenFile,
		// With NATS: backend.WithJetStream(js) watches RAMPART_REVOCATIONS
		// and publishes a backend_request event per request.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	tools := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := backend.CredentialFrom(r.Context())
		fmt.Fprintf(w, "read for %s in task %s", cred.Subject, cred.TaskID)
	})
	srv := httptest.NewServer(v.Wrap(tools))
	defer srv.Close()

	for _, auth := range []string{"Bearer " + mint(), ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/read", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, body["code"])
	}
	// Output:
	// 200 <nil>
	// 401 missing_credential
}

// exampleEnforcer serves a JWKS and an introspection endpoint that finds
// every token active to the files backend's workload token, and mints credentials as the enforcer does.
func exampleEnforcer() (*httptest.Server, func() string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := jwk.FromRaw(priv)
	pub, _ := key.PublicKey()
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(set) })
	mux.HandleFunc("POST /_rampart/introspect", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer files-workload-token" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"active":true}`))
	})
	srv := httptest.NewServer(mux)
	mint := func() string {
		now := time.Now().Unix()
		claims, _ := json.Marshal(map[string]any{"iss": srv.URL, "sub": "user:alice", "aud": "https://files.example",
			"tenant": "acme", "task_id": "task-1", "jti": "jti-1", "iat": now, "nbf": now, "exp": now + 300})
		h := jws.NewHeaders()
		_ = h.Set(jws.TypeKey, "at+jwt")
		_ = h.Set(jws.KeyIDKey, "k1")
		tok, _ := jws.Sign(claims, jws.WithKey(jwa.EdDSA, priv, jws.WithProtectedHeaders(h)))
		return string(tok)
	}
	return srv, mint
}
