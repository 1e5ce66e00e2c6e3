package credential

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of Config and Spec.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultMaxTTL       = time.Hour
	DefaultMaxPerTenant = 4096
	DefaultMaxTenants   = 1024
)

// Config is the enforcer's "credentials" section: who the enforcer fleet
// is as an issuer and which keys it signs with.
//
//	credentials:
//	  issuer: https://rampart.acme.internal
//	  key_file: /etc/rampart/credential-key.pem
//	  next_key_file: /etc/rampart/credential-key-next.pem
//	  max_ttl: 1h
//	  cache: {max_per_tenant: 4096, max_tenants: 1024}
type Config struct {
	// Issuer is the iss of every minted token: the enforcer fleet's URL,
	// the same at every instance. Required, an https URL (http only for
	// loopback hosts, in tests and demos).
	Issuer string `yaml:"issuer"`
	// KeyFile holds the signing key, a PEM PKCS#8 Ed25519 or P-256 (ES256)
	// private key. Required. Its kid is the key's RFC 7638 thumbprint, so
	// every instance given the same file names it the same.
	KeyFile string `yaml:"key_file"`
	// NextKeyFile, when set, holds the key that replaces KeyFile at the
	// next rotation. Only its public half is used: it is published in the
	// JWKS beside the current key, so backends know it before the first
	// token signed with it arrives. To rotate: set next_key_file, wait out
	// the backends' JWKS refresh, then make it key_file (and the old key,
	// until its last token expires, next_key_file — it is published either
	// way).
	NextKeyFile string `yaml:"next_key_file"`
	// RetiringKeyFiles hold keys that no longer sign but whose tokens may
	// still be live: each is published in the JWKS and verifies at
	// introspection until it is removed from the list, which must wait
	// until max_ttl has passed since the last instance signed with it.
	// Only their public halves are used. The rotation procedure is in the
	// README (Task credentials, Key rotation).
	RetiringKeyFiles []string `yaml:"retiring_key_files"`
	// MaxTTL bounds every spec's ttl. Default 1h.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// Cache bounds the minted tokens kept for reuse.
	Cache CacheConfig `yaml:"cache"`
	// StripHeaders are the headers a caller's credentials may travel in,
	// all removed (in any letter case) from a request whose destination
	// gets a minted credential, before Authorization is set to it. Listed
	// names are added to the default: Authorization, Proxy-Authorization,
	// Cookie, Cookie2, X-Api-Key, Api-Key, X-Auth-Token, X-Access-Token,
	// X-Amz-Security-Token, X-Goog-Api-Key.
	StripHeaders []string `yaml:"strip_headers"`
}

// DefaultStripHeaders are the credential-bearing headers always stripped.
var DefaultStripHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Cookie2", "X-Api-Key", "Api-Key",
	"X-Auth-Token", "X-Access-Token", "X-Amz-Security-Token", "X-Goog-Api-Key",
}

// CacheConfig bounds the cache of minted tokens.
type CacheConfig struct {
	// MaxPerTenant is how many tokens one tenant may have cached; past it
	// the tenant's least recently used goes, and only the tenant's.
	// Default 4096.
	MaxPerTenant int `yaml:"max_per_tenant"`
	// MaxTenants is how many tenants may have tokens cached; past it the
	// least recently active tenant's tokens go. Default 1024.
	MaxTenants int `yaml:"max_tenants"`
}

// Enabled reports whether credentials are configured at all.
func (c *Config) Enabled() bool {
	return c.Issuer != "" || c.KeyFile != "" || c.NextKeyFile != "" || len(c.RetiringKeyFiles) > 0
}

// SetDefaults fills the unset fields of c.
func (c *Config) SetDefaults() {
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.Cache.MaxPerTenant == 0 {
		c.Cache.MaxPerTenant = DefaultMaxPerTenant
	}
	if c.Cache.MaxTenants == 0 {
		c.Cache.MaxTenants = DefaultMaxTenants
	}
	for _, h := range DefaultStripHeaders {
		if !slices.ContainsFunc(c.StripHeaders, func(s string) bool { return strings.EqualFold(s, h) }) {
			c.StripHeaders = append(c.StripHeaders, h)
		}
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("credentials: issuer is required")
	case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("credentials: issuer %q is not an absolute URL without query or fragment", c.Issuer)
	case u.Scheme != "https" && (u.Scheme != "http" || !loopback(u.Hostname())):
		return fmt.Errorf("credentials: issuer %q must be https (http only on a loopback host)", c.Issuer)
	case c.KeyFile == "":
		return errors.New("credentials: key_file is required")
	case c.NextKeyFile == c.KeyFile:
		return errors.New("credentials: next_key_file is key_file")
	case slices.Contains(c.RetiringKeyFiles, c.KeyFile):
		return errors.New("credentials: retiring_key_files lists key_file: the signing key cannot be retiring")
	case c.NextKeyFile != "" && slices.Contains(c.RetiringKeyFiles, c.NextKeyFile):
		return errors.New("credentials: retiring_key_files lists next_key_file")
	case c.MaxTTL < time.Second:
		return fmt.Errorf("credentials: max_ttl %s is under a second", c.MaxTTL)
	case c.Cache.MaxPerTenant < 1 || c.Cache.MaxTenants < 1:
		return errors.New("credentials: cache bounds must be positive")
	case slices.Contains(c.StripHeaders, ""):
		return errors.New("credentials: strip_headers: empty header name")
	}
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Spec is what a destination (or a rule) asks to be minted for its calls:
//
//	credential: {audience: "https://crm.acme.internal", scope: [crm.read], ttl: 5m}
type Spec struct {
	// Audience is the aud of the token: the backend that accepts it.
	// Required.
	Audience string `yaml:"audience"`
	// Scope lists the token's scopes. Empty: the tool of the call (a
	// tools/call), so a token is good for the one tool it was minted for.
	Scope []string `yaml:"scope"`
	// TTL is how long a token lives, at most Config.MaxTTL. Default 5m.
	TTL time.Duration `yaml:"ttl"`
}

// MarshalJSON writes the spec as policy tools show obligations: the ttl
// as a Go duration string, as in YAML.
func (s Spec) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Audience string   `json:"audience"`
		Scope    []string `json:"scope,omitempty"`
		TTL      string   `json:"ttl"`
	}{s.Audience, s.Scope, s.TTL.String()})
}

// SetDefaults fills the unset fields of s.
func (s *Spec) SetDefaults() {
	if s.TTL == 0 {
		s.TTL = DefaultTTL
	}
}

// Validate reports the first error of s.
func (s *Spec) Validate() error {
	switch {
	case s.Audience == "":
		return errors.New("credential: audience is required")
	case s.TTL < time.Second:
		return fmt.Errorf("credential: ttl %s is under a second", s.TTL)
	}
	for _, sc := range s.Scope {
		if err := CheckScope(sc); err != nil {
			return err
		}
	}
	return nil
}

// CheckScope reports whether s is one scope token (RFC 6749 §3.3):
// printable ASCII without space, double quote or backslash.
func CheckScope(s string) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r >= 0x7f || r == '"' || r == '\\' }) {
		return fmt.Errorf("credential: scope %q is not a scope token", s)
	}
	return nil
}
