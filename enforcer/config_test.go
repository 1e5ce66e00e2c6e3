package enforcer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/policy"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := enforcer.LoadConfig("enforcer.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Instance != "enforcer-1" || c.NATS.PublishTimeout != 2*time.Second || c.Identity.ClockSkew != 30*time.Second {
		t.Errorf("config = %+v", c)
	}
	if want, _ := filepath.Abs("policy.example.yaml"); !sameFile(t, c.PolicyFile, want) {
		t.Errorf("policy_file = %q, want it resolved next to the config", c.PolicyFile)
	}
	if _, err := policy.Load(c.PolicyFile); err != nil {
		t.Errorf("example policy: %v", err)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func TestLoadConfigErrors(t *testing.T) {
	const valid = "upstream: http://127.0.0.1:9000\npolicy_file: p.yaml\nnats: {url: nats://x}\n" +
		"identity: {issuer: i, audience: a, jwks_file: j.json}\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key", valid + "listne: :80\n", "listne"},
		{"unknown nested key", strings.Replace(valid, "jwks_file", "jwks_fiel", 1), "jwks_fiel"},
		{"no upstream", strings.Replace(valid, "upstream: http://127.0.0.1:9000\n", "", 1), "upstream"},
		{"bad upstream", strings.Replace(valid, "http://127.0.0.1:9000", "127.0.0.1:9000", 1), "upstream"},
		{"no policy", strings.Replace(valid, "policy_file: p.yaml\n", "", 1), "policy_file"},
		{"negative publish timeout", strings.Replace(valid, "nats: {url: nats://x}", "nats: {publish_timeout: -1s}", 1), "publish_timeout"},
		{"no issuer", strings.Replace(valid, "issuer: i, ", "", 1), "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "enforcer.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := enforcer.LoadConfig(p)
			if err == nil {
				err = c.Validate() // as New does, after overrides
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
