// Package destination names where a request goes and what class of data it
// carries, from the request's host, path and tool, so that policy and the
// audit trail can speak of "external-email" and "confidential" rather than
// of host names. The mapping is configured as an ordered list of rules,
// compiled once; the first rule that matches decides.
package destination

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"

	"github.com/rampart-io/rampart/enforcer/credential"
	"gopkg.in/yaml.v3"
)

// Defaults of Config.Default.
const (
	DefaultDestination = "unknown"
	DefaultDataClass   = "unclassified"
)

// Config is the destination mapping. In YAML (the enforcer's
// "destinations" section):
//
//	rules:
//	  - match: {host: "tools.acme.internal", path_prefix: "/mcp", tool: "send_email"}
//	    destination: external-email
//	    data_class: confidential
//	  - match: {host: "crm.acme.internal"}
//	    destination: crm
//	    data_class: confidential
//	    credential: {audience: "https://crm.acme.internal", ttl: 5m}
//	  - match: {host: "*.internal"}
//	    destination: internal
//	    data_class: internal
//	default: {destination: unknown, data_class: unclassified}
type Config struct {
	// Rules are tried in order; the first whose match fits the request
	// names it.
	Rules []Rule `yaml:"rules"`
	// Default names requests no rule matches. Its fields default to
	// "unknown" and "unclassified".
	Default Target `yaml:"default"`
}

// Rule maps the requests its Match fits to a destination and data class.
type Rule struct {
	Match Match `yaml:"match"`
	// Destination names where the request goes. Required.
	Destination string `yaml:"destination"`
	// DataClass names the class of data it carries. Required.
	DataClass string `yaml:"data_class"`
	// Credential, when set, has the enforcer replace the caller's own
	// credentials on allowed calls with a token it mints for the task
	// (the enforcer's "credentials" section must be configured).
	Credential *credential.Spec `yaml:"credential"`
}

// Match says which requests a rule is for. An empty field matches every
// request; at least one field must be set.
type Match struct {
	// Host is a host name, matched without case and without the port of
	// the request's host; "*.example.com" matches every name below
	// example.com (not example.com itself). A leading "*." is the only
	// wildcard.
	Host string `yaml:"host"`
	// PathPrefix matches the request path (cleaned, so "/a/../mcp" is
	// "/mcp") when it is the prefix or the prefix is a whole number of
	// path segments of it: "/mcp" matches "/mcp" and "/mcp/x", not
	// "/mcpx". It starts with "/".
	PathPrefix string `yaml:"path_prefix"`
	// Tool is the exact tool name of a tools/call.
	Tool string `yaml:"tool"`
}

// Target is a destination and data class, and the credential its calls
// carry (nil: the caller's own, as sent).
type Target struct {
	Destination string           `yaml:"destination"`
	DataClass   string           `yaml:"data_class"`
	Credential  *credential.Spec `yaml:"credential"`
}

// Specs are the credential specs of c's rules and default, which the
// enforcer holds to its credentials section.
func (c *Config) Specs() []*credential.Spec {
	var out []*credential.Spec
	for _, r := range c.Rules {
		if r.Credential != nil {
			out = append(out, r.Credential)
		}
	}
	if c.Default.Credential != nil {
		out = append(out, c.Default.Credential)
	}
	return out
}

// SetDefaults fills the unset fields of c.
func (c *Config) SetDefaults() {
	if c.Default.Destination == "" {
		c.Default.Destination = DefaultDestination
	}
	if c.Default.DataClass == "" {
		c.Default.DataClass = DefaultDataClass
	}
	for _, s := range c.Specs() {
		s.SetDefaults()
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	seen := map[Match]int{}
	for i, r := range c.Rules {
		where := fmt.Sprintf("destination: destinations[%d]", i)
		m := r.Match
		switch {
		case m == Match{}:
			return fmt.Errorf("%s: match needs at least one of host, path_prefix, tool", where)
		case strings.Contains(strings.TrimPrefix(m.Host, "*."), "*"):
			return fmt.Errorf("%s: host %q: only a leading \"*.\" is a wildcard", where, m.Host)
		case m.Host == "*.":
			return fmt.Errorf("%s: host %q: a wildcard needs a domain after it", where, m.Host)
		case strings.Contains(m.Host, ":") || strings.Contains(m.Host, "/"):
			return fmt.Errorf("%s: host %q: a host name, without port or path", where, m.Host)
		case m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/"):
			return fmt.Errorf("%s: path_prefix %q must start with \"/\"", where, m.PathPrefix)
		case r.Destination == "" || r.DataClass == "":
			return fmt.Errorf("%s: destination and data_class are required", where)
		}
		if r.Credential != nil {
			if err := r.Credential.Validate(); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		key := Match{Host: normHost(m.Host), PathPrefix: m.PathPrefix, Tool: m.Tool}
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%s: same match as destinations[%d], so it never applies", where, j)
		}
		seen[key] = i
	}
	if c.Default.Destination == "" || c.Default.DataClass == "" {
		return errors.New("destination: default: destination and data_class are required")
	}
	if c.Default.Credential != nil {
		if err := c.Default.Credential.Validate(); err != nil {
			return fmt.Errorf("destination: default: %w", err)
		}
	}
	return nil
}

// Load reads a destination mapping from a YAML file, strictly: unknown
// keys are errors. Defaults are filled in.
func Load(file string) (Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("destination: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, file)
	}
	return c, nil
}

// Parse decodes a destination mapping from YAML, strictly: unknown keys
// are errors. Defaults are filled in.
func Parse(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("destination: %w", err)
	}
	c.SetDefaults()
	return c, nil
}

// Map is a compiled destination mapping. It is immutable and safe for
// concurrent use.
type Map struct {
	rules []rule
	def   Target
}

// rule is a Rule with its host pattern split for matching.
type rule struct {
	host   string // exact host, or the suffix ".example.com" when wild
	wild   bool
	prefix string
	tool   string
	target Target
}

// New compiles cfg after filling in its defaults.
func New(cfg Config) (*Map, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Map{def: cfg.Default, rules: make([]rule, len(cfg.Rules))}
	for i, r := range cfg.Rules {
		h := normHost(r.Match.Host)
		c := rule{host: h, prefix: r.Match.PathPrefix, tool: r.Match.Tool, target: Target{r.Destination, r.DataClass, r.Credential}}
		if strings.HasPrefix(h, "*.") {
			c.host, c.wild = h[1:], true
		}
		m.rules[i] = c
	}
	return m, nil
}

// Lookup returns the destination and data class of a request to host
// (the Host header or URL host, with or without port), path (the decoded
// URL path) and tool (the tools/call tool name, "" for none).
func (m *Map) Lookup(host, path, tool string) (destination, dataClass string) {
	t, _ := m.Match(host, path, tool)
	return t.Destination, t.DataClass
}

// Match is Lookup that also says which rule matched: its index in
// Config.Rules, or -1 for the default.
func (m *Map) Match(host, urlPath, tool string) (Target, int) {
	host = requestHost(host)
	if !strings.HasPrefix(urlPath, "/") {
		urlPath = "/" + urlPath
	}
	urlPath = path.Clean(urlPath)
	for i := range m.rules {
		if r := &m.rules[i]; r.matches(host, urlPath, tool) {
			return r.target, i
		}
	}
	return m.def, -1
}

func (r *rule) matches(host, urlPath, tool string) bool {
	if r.tool != "" && r.tool != tool {
		return false
	}
	switch {
	case r.host == "":
	case r.wild:
		if len(host) <= len(r.host) || !strings.HasSuffix(host, r.host) {
			return false
		}
	case host != r.host:
		return false
	}
	if r.prefix == "" || r.prefix == "/" {
		return true
	}
	if !strings.HasPrefix(urlPath, r.prefix) {
		return false
	}
	// Whole segments only: "/mcp" is not a prefix of "/mcpx".
	return len(urlPath) == len(r.prefix) || strings.HasSuffix(r.prefix, "/") || urlPath[len(r.prefix)] == '/'
}

// requestHost is host without port, in lower case, without a trailing dot.
func requestHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	return normHost(host)
}

// normHost lowers host and drops a trailing dot, allocating only when it
// has to.
func normHost(host string) string {
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
