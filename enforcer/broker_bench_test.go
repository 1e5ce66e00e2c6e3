package enforcer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// BenchmarkTokenExchange is the cost of one POST /_rampart/token up to
// its record — form, caller and subject token (both verified, as a
// repeat, from the identity cache), policy, grant and a fresh mint —
// beside the inline mint of a proxied call up to its record (the decision
// path with a fresh destination credential, as in
// BenchmarkCredentialDecisionPath), in the same run. The record is left
// out of both: it is the same JetStream publish either way.
// go test -run '^$' -bench TokenExchange -benchmem ./enforcer/
func BenchmarkTokenExchange(b *testing.B) {
	withBroker := func(dir string, c *Config) {
		c.Credentials = credential.Config{Issuer: "https://rampart.bench", KeyFile: benchCredentialKey(dir)}
		c.Destinations.Default.Credential = &credential.Spec{Audience: "https://tools.bench"}
		p := filepath.Join(dir, "policy.yaml")
		y, _ := os.ReadFile(p)
		// The exchange's rule after the 19 that do not match, as the
		// inline call's "last" is.
		rule := "  - id: exchange\n    match: 'destination == \"rampart.token\" && tenant == \"acme\" && args.audience == \"https://tools.bench\"'\n" +
			"    effect: allow\n    obligations: {credential: {audience: \"https://tools.bench\", scope: [search]}}\n"
		y = bytes.Replace(y, []byte("  - id: last\n"), []byte(rule+"  - id: last\n"), 1)
		_ = os.WriteFile(p, y, 0o600)
	}
	e, token := testEnforcer(b, false, "http://127.0.0.1:1", withBroker)
	ctx := context.Background()
	b.Run("inline", func(b *testing.B) {
		body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue","size":10,"filters":{"team":"finance"}}}}`)
		header := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}, "Agent-Task-Id": {"t-1"}}
		b.ReportAllocs()
		for b.Loop() {
			v := e.evaluate(ctx, &check{method: "POST", host: "mcp.internal", path: "/mcp", rawPath: "/mcp", header: header, body: bytes.NewReader(body)})
			if v.code != "" || v.policy.RuleID != "last" {
				b.Fatalf("verdict %+v %v", v.policy, v.cause)
			}
			m, err := e.credentialFor(ctx, v.x)
			if err != nil || !m.fresh {
				b.Fatal(err)
			}
			m.done()
		}
	})
	b.Run("exchange", func(b *testing.B) {
		form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {token}, "subject_token_type": {tokenTypeJWT},
			"audience": {"https://tools.bench"}, "scope": {"search"}}.Encode()
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(form))
			r.Header.Set("Authorization", "Bearer "+token)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			c := &check{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.EscapedPath(), header: r.Header}
			bc := &brokerCall{w: httptest.NewRecorder(), x: e.newExchange(c)}
			bc.x.request.Destination = DestinationToken
			if _, err := e.admit(ctx, c, bc.x); err != nil {
				b.Fatal(err)
			}
			var err error
			if bc.form, _, err = readForm(r); err != nil {
				b.Fatal(err)
			}
			if g, ok := e.mintExchange(ctx, bc); !ok || g.token.Raw == "" {
				b.Fatalf("refused: %s", bc.w.(*httptest.ResponseRecorder).Body)
			}
		}
	})
}

func benchCredentialKey(dir string) string {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f := filepath.Join(dir, "cred.pem")
	_ = os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	return f
}
