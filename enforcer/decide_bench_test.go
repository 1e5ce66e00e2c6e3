package enforcer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/toolschema"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// BenchmarkDecisionPath measures everything the enforcer does to decide
// one MCP tools/call except recording it: a cached token, JSON-RPC
// parsing, the destination map, and a 20-rule policy whose last rule
// decides — with and without a pinned argument schema.
// go test -run '^$' -bench DecisionPath -benchmem ./enforcer/
func BenchmarkDecisionPath(b *testing.B) {
	for _, withSchema := range []bool{false, true} {
		b.Run(fmt.Sprintf("schema=%v", withSchema), func(b *testing.B) {
			e, token := benchEnforcer(b, withSchema)
			body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue","size":10,"filters":{"team":"finance"}}}}`)
			header := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				v := e.evaluate(ctx, &check{method: "POST", host: "mcp.internal", path: "/mcp", rawPath: "/mcp", header: header, body: bytes.NewReader(body)})
				if v.code != "" || v.policy.RuleID != "last" {
					b.Fatalf("verdict %+v %v", v.policy, v.cause)
				}
			}
		})
	}
}

func benchEnforcer(b *testing.B, withSchema bool) (*Enforcer, string) {
	return testEnforcer(b, withSchema, "http://127.0.0.1:1")
}

// testEnforcer is the benchmarks' enforcer, forwarding to upstream, and a
// token it accepts.
func testEnforcer(b testing.TB, withSchema bool, upstream string, edits ...func(dir string, c *Config)) (*Enforcer, string) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	dir := b.TempDir()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := jwk.FromRaw(raw)
	_ = key.Set(jwk.KeyIDKey, "k1")
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600)

	var y strings.Builder
	y.WriteString("id: bench\nrules:\n")
	for i := range 19 {
		fmt.Fprintf(&y, "  - id: r%d\n    match: 'tool == \"tool%d\" && tenant == \"acme\"'\n    effect: deny\n", i, i)
	}
	y.WriteString("  - id: last\n    match: 'tool in [\"search\", \"read_file\"] && tenant == \"acme\" && actor.startsWith(\"agent:\") && chain_depth <= 3'\n    effect: allow\n")
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(y.String()), 0o600)

	cfg := Config{
		Upstream: upstream, Instance: "bench", PolicyFile: filepath.Join(dir, "policy.yaml"),
		Identity: identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: "https://idp.bench", Audience: "rampart", JWKSFile: filepath.Join(dir, "jwks.json")}},
		NATS:     audit.Config{URL: stream.URLs(natstest.Run(b).URL()), Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}},
	}
	if withSchema {
		cfg.ToolSchemas.Tools = map[string]toolschema.Source{"search": {Schema: map[string]any{
			"type": "object", "required": []any{"q"},
			"properties": map[string]any{"q": map[string]any{"type": "string"}, "size": map[string]any{"type": "integer"}},
		}}}
	}
	for _, edit := range edits {
		edit(dir, &cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	claims, _ := json.Marshal(map[string]any{"iss": "https://idp.bench", "aud": "rampart", "sub": "user:alice", "tenant": "acme",
		"exp": time.Now().Add(time.Hour).Unix(), "sid": "s1", "act": map[string]any{"sub": "agent:planner"}})
	tok, err := jws.Sign(claims, jws.WithKey(jwa.ES256, key))
	if err != nil {
		b.Fatal(err)
	}
	return e, string(tok)
}
