package enforcer_test

import (
	"os"
	"path/filepath"
	"slices"
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

// A cluster's seeds are one comma-separated string, as nats.go takes
// them, or a YAML list; either way nats.Connect is given the joined form.
func TestNATSSeedURLs(t *testing.T) {
	const rest = "upstream: http://127.0.0.1:9000\npolicy_file: p.yaml\nidentity: {issuer: i, audience: a, jwks_file: j.json}\n"
	for name, nats := range map[string]string{
		"comma-separated": "nats: {url: 'nats://n1:4222,nats://n2:4222,nats://n3:4222'}\n",
		"list":            "nats:\n  url:\n    - nats://n1:4222\n    - nats://n2:4222\n    - nats://n3:4222\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "enforcer.yaml")
			os.WriteFile(p, []byte(rest+nats), 0o600)
			c, err := enforcer.LoadConfig(p)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"nats://n1:4222", "nats://n2:4222", "nats://n3:4222"}; !slices.Equal(c.NATS.URL.List(), want) || string(c.NATS.URL) != strings.Join(want, ",") {
				t.Fatalf("url %q, want %v", c.NATS.URL, want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	var c enforcer.Config
	c.SetDefaults()
	if !slices.Equal(c.Modes, []string{enforcer.ModeProxy}) || c.ForwardAuth.Path != "/_rampart/auth" ||
		c.ExtAuthz.GRPCListen != "127.0.0.1:9191" || c.ExtAuthz.HTTPPathPrefix != "/_rampart/ext_authz" ||
		!slices.Equal(c.TrustedProxies, []string{"127.0.0.0/8", "::1/128"}) || c.MaxHeaderBytes != 32<<10 ||
		c.Timeouts.ReadHeader != 10*time.Second || c.Timeouts.Read != 30*time.Second || c.Timeouts.Write != 0 ||
		c.Timeouts.Idle != 120*time.Second || c.H2C || c.TLS.Enabled() || !slices.Equal(c.MCP.Paths, []string{"/"}) {
		t.Errorf("defaults = %+v", c)
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
		{"recording credentials", valid + "record_headers: [User-Agent, Authorization]\n", "never recorded"},
		{"unknown mode", valid + "modes: [proxy, sidecar]\n", "sidecar"},
		{"proxy mode without upstream", strings.Replace(valid, "upstream: http://127.0.0.1:9000\n", "", 1) + "modes: [proxy, forward_auth]\n", "upstream"},
		{"forward-auth path not absolute", valid + "forward_auth: {path: auth}\n", "forward_auth.path"},
		{"bad trusted proxy", valid + "trusted_proxies: [10.0.0.0/33]\n", "trusted_proxies"},
		{"cert without key", valid + "tls: {cert_file: c.pem}\n", "tls.cert_file"},
		{"client CA without TLS", valid + "tls: {client_ca_file: ca.pem}\n", "tls.client_ca_file"},
		{"required client cert without CA", valid + "tls: {cert_file: c.pem, key_file: k.pem, require_client_cert: true}\n", "require_client_cert"},
		{"negative timeout", valid + "timeouts: {idle: -1s}\n", "timeouts"},
		{"unknown timeout", valid + "timeouts: {reed: 1s}\n", "reed"},
		{"negative max header bytes", valid + "max_header_bytes: -1\n", "max_header_bytes"},
		{"relative MCP path", valid + "mcp: {paths: [mcp]}\n", "mcp: paths"},
		{"MCP path not canonical", valid + "mcp: {paths: [/a/../mcp]}\n", "mcp: paths"},
		{"forward_auth without a gateway", valid + "modes: [forward_auth]\nforward_auth: {secret_file: s}\n", "forward_auth.gateway"},
		{"forward_auth with an unknown gateway", valid + "modes: [forward_auth]\nforward_auth: {gateway: haproxy, secret_file: s}\n", "forward_auth.gateway"},
		{"forward_auth without a secret", valid + "modes: [forward_auth]\nforward_auth: {gateway: nginx}\n", "secret_file"},
		{"forward_auth header lists are gone", valid + "forward_auth: {uri_headers: [X-Original-URI]}\n", "uri_headers"},
		{"bad forwarded_for", valid + "forwarded_for: [nonsense]\n", "forwarded_for"},
		{"empty nats url in a list", strings.Replace(valid, "nats: {url: nats://x}", "nats: {url: [nats://a:4222, '']}", 1), "empty entry"},
		{"nats url list entry with a comma", strings.Replace(valid, "nats: {url: nats://x}", "nats: {url: ['nats://a:4222,nats://b:4222']}", 1), "one URL per list entry"},
		{"nats url not a nats scheme", strings.Replace(valid, "nats: {url: nats://x}", "nats: {url: 'nats://a:4222,http://b:4222'}", 1), "scheme"},
		{"nats url a map", strings.Replace(valid, "nats: {url: nats://x}", "nats: {url: {host: a}}", 1), "list of URLs"},
		{"a correlator's instance name", valid + "instance: \"correlator:x\"\n", "correlator:"},
		{"negative session bindings", valid + "session_bindings: {max_total: -1}\n", "session_bindings"},
		{"negative budget bound", valid + "budgets: {max_total: -1}\n", "max_total must not be negative"},
		{"tenant budget bound above the total", valid + "budgets: {max_total: 5000}\n", "max_per_tenant (10000) must not exceed max_total (5000)"},
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
