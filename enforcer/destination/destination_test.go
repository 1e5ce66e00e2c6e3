package destination_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/destination"
)

func load(t testing.TB, file string) *destination.Map {
	t.Helper()
	cfg, err := destination.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := destination.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookup(t *testing.T) {
	m := load(t, "testdata/destinations.good.yml")
	tests := []struct {
		name             string
		host, path, tool string
		wantDest         string
		wantClass        string
		wantRule         int
	}{
		{name: "most specific rule", host: "tools.acme.internal", path: "/mcp", tool: "send_email", wantDest: "external-email", wantClass: "confidential", wantRule: 0},
		{name: "port and case ignored", host: "Tools.ACME.internal:8443", path: "/mcp/v1", tool: "send_email", wantDest: "external-email", wantClass: "confidential", wantRule: 0},
		{name: "trailing dot ignored", host: "tools.acme.internal.", path: "/mcp", tool: "send_email", wantDest: "external-email", wantClass: "confidential", wantRule: 0},
		{name: "other tool, same path", host: "tools.acme.internal", path: "/mcp", tool: "search", wantDest: "acme-tools", wantClass: "internal", wantRule: 1},
		{name: "path prefix is whole segments", host: "tools.acme.internal", path: "/mcpx", tool: "send_email", wantDest: "internal", wantClass: "internal", wantRule: 2},
		{name: "path cleaned before matching", host: "tools.acme.internal", path: "/other/../mcp/x", tool: "send_email", wantDest: "external-email", wantClass: "confidential", wantRule: 0},
		{name: "path escaping the prefix", host: "tools.acme.internal", path: "/mcp/../admin", tool: "send_email", wantDest: "internal", wantClass: "internal", wantRule: 2},
		{name: "path without a slash", host: "tools.acme.internal", path: "mcp", tool: "x", wantDest: "acme-tools", wantClass: "internal", wantRule: 1},
		{name: "wildcard one level", host: "db.internal", path: "/", wantDest: "internal", wantClass: "internal", wantRule: 2},
		{name: "wildcard two levels", host: "a.b.internal:80", path: "/", wantDest: "internal", wantClass: "internal", wantRule: 2},
		{name: "wildcard not the bare domain", host: "internal", path: "/", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
		{name: "wildcard not a longer label", host: "evilinternal", path: "/", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
		{name: "suffix lookalike", host: "tools.acme.internal.evil.example", path: "/mcp", tool: "send_email", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
		{name: "tool only rule", host: "api.example.com", path: "/", tool: "web_fetch", wantDest: "internet", wantClass: "public", wantRule: 3},
		{name: "tool names are exact", host: "api.example.com", path: "/", tool: "Web_Fetch", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
		{name: "IPv6 host", host: "[::1]:8080", path: "/", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
		{name: "default", host: "example.org", path: "/x", wantDest: "unknown", wantClass: "unclassified", wantRule: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, rule := m.Match(tt.host, tt.path, tt.tool)
			if target.Destination != tt.wantDest || target.DataClass != tt.wantClass || rule != tt.wantRule {
				t.Errorf("Match = %+v, rule %d; want %s/%s, rule %d", target, rule, tt.wantDest, tt.wantClass, tt.wantRule)
			}
			if d, c := m.Lookup(tt.host, tt.path, tt.tool); d != tt.wantDest || c != tt.wantClass {
				t.Errorf("Lookup = %s/%s", d, c)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantDest  string
		wantClass string
	}{
		{name: "empty file", yaml: ``, wantDest: "unknown", wantClass: "unclassified"},
		{name: "default set", yaml: "default: {destination: elsewhere, data_class: restricted}", wantDest: "elsewhere", wantClass: "restricted"},
		{name: "default half set", yaml: "default: {data_class: restricted}", wantDest: "unknown", wantClass: "restricted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := destination.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			m, err := destination.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if d, c := m.Lookup("a.example", "/", "t"); d != tt.wantDest || c != tt.wantClass {
				t.Errorf("Lookup = %s/%s, want %s/%s", d, c, tt.wantDest, tt.wantClass)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{file: "unknown_key.bad.yml", wantErr: "paht_prefix"},
		{file: "middle_wildcard.bad.yml", wantErr: "only a leading"},
		{file: "empty_match.bad.yml", wantErr: "at least one of"},
		{file: "shadowed.bad.yml", wantErr: "never applies"},
		{file: "no_class.bad.yml", wantErr: "data_class are required"},
		{file: "relative_path.bad.yml", wantErr: "must start with"},
		{file: "port.bad.yml", wantErr: "without port"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := destination.Load(filepath.Join("testdata", tt.file))
			if err == nil {
				_, err = destination.New(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	m := load(b, "testdata/destinations.good.yml")
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := m.Lookup("db.internal:443", "/mcp/v1", "search"); d != "internal" {
			b.Fatal(d)
		}
	}
}

func TestParseCredential(t *testing.T) {
	c, err := destination.Parse([]byte(`rules:
  - match: {host: crm.internal}
    destination: crm
    data_class: confidential
    credential: {audience: "https://crm.internal", scope: [crm.read], ttl: 2m}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m, _ := destination.New(c)
	got, _ := m.Match("crm.internal", "/mcp", "")
	if got.Credential == nil || got.Credential.Audience != "https://crm.internal" || got.Credential.TTL != 2*time.Minute {
		t.Fatalf("credential %+v", got.Credential)
	}
	if other, _ := m.Match("other.internal", "/mcp", ""); other.Credential != nil {
		t.Errorf("the default carries %+v", other.Credential)
	}
	for name, y := range map[string]string{
		"unknown key": "rules:\n  - match: {host: a}\n    destination: d\n    data_class: c\n    credential: {audience: a, lifetime: 1m}\n",
		"no audience": "rules:\n  - match: {host: a}\n    destination: d\n    data_class: c\n    credential: {ttl: 1m}\n",
		"bad scope":   "default: {destination: d, data_class: c, credential: {audience: a, scope: ['a b']}}\n",
	} {
		c, err := destination.Parse([]byte(y))
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
