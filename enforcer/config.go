package enforcer

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/schema/configfile"
)

// Config is the enforcer's configuration file. Unknown keys are errors.
type Config struct {
	// Listen is the address agents connect to. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// Upstream is the URL of the backend (an MCP server or any HTTP API)
	// that allowed requests are forwarded to. Required.
	Upstream string `yaml:"upstream"`
	// Instance names this enforcer in events; each instance numbers its
	// events densely. Default: the host name.
	Instance string `yaml:"instance"`
	// Identity says which bearer tokens are accepted.
	Identity identity.Config `yaml:"identity"`
	// PolicyFile is the YAML policy, relative to the config file. Required.
	PolicyFile string `yaml:"policy_file"`
	// NATS is where events are published; requests are refused while it
	// cannot acknowledge them.
	NATS audit.Config `yaml:"nats"`
	// MaxBodyBytes bounds a request body; larger requests get 413.
	// Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// SetDefaults fills every unset field, in this struct and the component
// configs it holds, with its default.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Instance == "" {
		if h, err := os.Hostname(); err == nil {
			c.Instance = h
		}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = mcp.DefaultMaxBodyBytes
	}
	c.Identity.SetDefaults()
	c.NATS.SetDefaults()
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	if c.Upstream == "" {
		return errors.New("enforcer: upstream is required")
	}
	u, err := url.Parse(c.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("enforcer: upstream %q must be an http or https URL", c.Upstream)
	}
	switch {
	case c.Instance == "":
		return errors.New("enforcer: instance is required (no host name to default to)")
	case c.PolicyFile == "":
		return errors.New("enforcer: policy_file is required")
	case c.MaxBodyBytes < 0:
		return errors.New("enforcer: max_body_bytes must not be negative")
	}
	if err := c.Identity.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.NATS.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	return nil
}

// LoadConfig reads the config file at path and fills in defaults; New
// validates it, after any overrides. Paths in it are taken relative to the
// file's directory. Unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	var c Config
	if err := configfile.Load(path, &c); err != nil {
		return c, fmt.Errorf("enforcer: %w", err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.PolicyFile, &c.Identity.JWKSFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.SetDefaults()
	return c, nil
}
