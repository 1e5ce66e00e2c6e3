package enforcer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// BenchmarkCredentialDecisionPath is the decision path (as
// BenchmarkDecisionPath, without the schema) with what a destination
// credential adds: none (the baseline), a credential found in the task's
// cache with the caller's headers replaced, and a fresh mint on every
// call (what the cache saves).
// go test -run '^$' -bench CredentialDecisionPath -benchmem ./enforcer/
func BenchmarkCredentialDecisionPath(b *testing.B) {
	withCredential := func(dir string, c *Config) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		f := filepath.Join(dir, "cred.pem")
		_ = os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		c.Credentials = credential.Config{Issuer: "https://rampart.bench", KeyFile: f}
		c.Destinations.Default.Credential = &credential.Spec{Audience: "https://tools.bench"}
	}
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue","size":10,"filters":{"team":"finance"}}}}`)
	for _, mode := range []string{"none", "cached", "fresh"} {
		b.Run("credential="+mode, func(b *testing.B) {
			var e *Enforcer
			var token string
			if mode == "none" {
				e, token = testEnforcer(b, false, "http://127.0.0.1:1")
			} else {
				e, token = testEnforcer(b, false, "http://127.0.0.1:1", withCredential)
			}
			header := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}, "Agent-Task-Id": {"t-1"}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				v := e.evaluate(ctx, &check{method: "POST", host: "mcp.internal", path: "/mcp", rawPath: "/mcp", header: header, body: bytes.NewReader(body)})
				if v.code != "" || v.policy.RuleID != "last" {
					b.Fatalf("verdict %+v %v", v.policy, v.cause)
				}
				if mode == "none" {
					continue
				}
				m, err := e.credentialFor(ctx, v.x)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "cached" {
					m.keep(e.minter)
					out := http.Header{"Authorization": header["Authorization"], "Content-Type": header["Content-Type"]}
					replaceCredentials(out, e.cfg.Credentials.StripHeaders, m.token.Raw)
				} else if !m.fresh {
					b.Fatal("fresh mode found a cached credential")
				}
				m.done()
			}
		})
	}
}
