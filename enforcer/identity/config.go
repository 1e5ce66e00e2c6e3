package identity

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"time"
)

// Defaults, in one place.
const (
	DefaultJWKSRefreshInterval = 15 * time.Minute
	DefaultJWKSRefetchInterval = 30 * time.Second
	DefaultClockSkew           = 30 * time.Second
	DefaultMaxChainDepth       = 8
	DefaultMaxTokenBytes       = 8 << 10
	DefaultCacheSize           = 10_000
	DefaultCacheTTL            = 5 * time.Minute

	// maxClockSkew bounds clock_skew: a larger tolerance would keep
	// expired tokens alive long enough to matter.
	maxClockSkew = 5 * time.Minute
	// minJWKSInterval keeps a misconfigured refresh from hammering the IdP.
	minJWKSInterval = time.Second
)

// DefaultAlgorithms are accepted when an issuer lists none.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// DefaultTokenTypes are the accepted "typ" header values when an issuer
// lists none (RFC 8725 §3.11; RFC 9068 for at+jwt).
var DefaultTokenTypes = []string{"JWT", "at+jwt"}

// supportedAlgorithms are the asymmetric JWS algorithms a JWKS can verify.
// "none" and the HMAC algorithms are absent on purpose: with a public JWKS,
// a shared-secret algorithm turns the published key into a signing key.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// IssuerConfig is one trusted token issuer: where its keys are and what its
// tokens must look like. Tokens are matched to an issuer by their "iss".
type IssuerConfig struct {
	// Issuer is the exact "iss" of this issuer's tokens. Required.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's "aud" values. Required.
	Audience string `yaml:"audience"`
	// JWKSFile is a local JSON Web Key Set, read once at start. Exactly one
	// of JWKSFile and JWKSURL is set.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is fetched at start (which must succeed), then refreshed every
	// JWKSRefreshInterval and, at most once per JWKSRefetchInterval, when a
	// token names an unknown kid, so keys rotate without a restart. It must
	// be https, except on a loopback host.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefreshInterval is the scheduled JWKS refresh period. Default 15m.
	JWKSRefreshInterval time.Duration `yaml:"jwks_refresh_interval"`
	// JWKSRefetchInterval is the least time between two JWKS fetches caused
	// by unknown kids, so a flood of forged kids costs at most one fetch
	// per interval. Default 30s.
	JWKSRefetchInterval time.Duration `yaml:"jwks_refetch_interval"`
	// Algorithms are the accepted signature algorithms; "none" and HMAC
	// algorithms are never accepted. Default RS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is tolerated on exp, nbf and iat. Default 30s, at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RequiredClaims must be present in every token, in addition to "exp"
	// and "sub", which always are.
	RequiredClaims []string `yaml:"required_claims"`
	// TokenTypes are the accepted "typ" header values, compared without
	// case and without an "application/" prefix. Default JWT, at+jwt.
	TokenTypes []string `yaml:"token_types"`
	// RequireTokenType rejects tokens without a "typ" header. Default false:
	// many issuers, including SPIFFE JWT-SVIDs, may leave it out.
	RequireTokenType bool `yaml:"require_token_type"`
	// Tenant binds the issuer to one tenant: its tokens without a tenant
	// claim (JWT-SVIDs carry none) are that tenant's, and a token naming
	// another tenant is refused. Without it a token must carry the claim.
	Tenant string `yaml:"tenant"`
}

// Config says which tokens are accepted and where identity claims are found.
//
// A single issuer is configured with the issuer fields at the top level
// (issuer, audience, jwks_url, ...); several are listed under issuers, and
// then the top-level issuer fields must be unset.
type Config struct {
	// IssuerConfig is the single trusted issuer, its fields at the top
	// level (issuer, audience, jwks_url, ...).
	IssuerConfig `yaml:",inline"`

	// Issuers lists several trusted issuers, each with its own keys and
	// rules. Mutually exclusive with the top-level issuer fields above.
	Issuers []IssuerConfig `yaml:"issuers"`

	// TenantClaim names the claim holding the tenant. Default "tenant".
	TenantClaim string `yaml:"tenant_claim"`
	// SessionClaim names the claim holding the agent session id. Default "sid".
	SessionClaim string `yaml:"session_claim"`
	// TaskClaim names the claim holding the task id. Default "task".
	TaskClaim string `yaml:"task_claim"`
	// SessionHeader carries the client's session id when the token has
	// none: MCP's, which the backend issues. The enforcer binds it to the
	// caller; another principal presenting it is refused. Default
	// "Mcp-Session-Id".
	SessionHeader string `yaml:"session_header"`
	// TaskHeader carries a client-chosen task id when the token has none,
	// bound to the caller like the session id. Default "Agent-Task-Id".
	TaskHeader string `yaml:"task_header"`
	// MaxChainDepth bounds nested "act" claims. Default 8.
	MaxChainDepth int `yaml:"max_chain_depth"`
	// MaxTokenBytes rejects longer tokens before any parsing. Default 8192.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// CacheSize bounds the verified-token cache (least recently used
	// tokens are evicted). Default 10000.
	CacheSize int `yaml:"cache_size"`
	// CacheTTL bounds how long a verified token is reused without checking
	// its signature again; never past its exp. A JWKS change empties the
	// cache. Default 5m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// IssuerConfigs returns the configured issuers: the Issuers list, or the
// top-level single issuer.
func (c *Config) IssuerConfigs() []IssuerConfig {
	if len(c.Issuers) > 0 {
		return c.Issuers
	}
	return []IssuerConfig{c.IssuerConfig}
}

// ResolvePaths makes every relative jwks_file relative to dir, the
// directory of the config file it was read from.
func (c *Config) ResolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.JWKSFile)
	for i := range c.Issuers {
		abs(&c.Issuers[i].JWKSFile)
	}
}

// SetDefaults fills every unset field with its default.
func (ic *IssuerConfig) SetDefaults() {
	if ic.JWKSURL != "" {
		if ic.JWKSRefreshInterval == 0 {
			ic.JWKSRefreshInterval = DefaultJWKSRefreshInterval
		}
		if ic.JWKSRefetchInterval == 0 {
			ic.JWKSRefetchInterval = DefaultJWKSRefetchInterval
		}
	}
	if len(ic.Algorithms) == 0 {
		ic.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	if ic.ClockSkew == 0 {
		ic.ClockSkew = DefaultClockSkew
	}
	if len(ic.TokenTypes) == 0 {
		ic.TokenTypes = slices.Clone(DefaultTokenTypes)
	}
}

// SetDefaults fills every unset field with its default. In the
// single-issuer form the top-level issuer fields are defaulted; with an
// issuers list, each entry is, and the top level stays unset so that
// Validate can tell a stray top-level field from a default.
func (c *Config) SetDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.TenantClaim, "tenant")
	def(&c.SessionClaim, "sid")
	def(&c.TaskClaim, "task")
	def(&c.SessionHeader, "Mcp-Session-Id")
	def(&c.TaskHeader, "Agent-Task-Id")
	if c.MaxChainDepth == 0 {
		c.MaxChainDepth = DefaultMaxChainDepth
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if len(c.Issuers) == 0 {
		c.IssuerConfig.SetDefaults()
		return
	}
	for i := range c.Issuers {
		c.Issuers[i].SetDefaults()
	}
}

// Validate reports the first error of one issuer's configuration.
func (ic *IssuerConfig) Validate() error {
	switch {
	case ic.Issuer == "":
		return errors.New("issuer is required")
	case ic.Audience == "":
		return errors.New("audience is required")
	case (ic.JWKSFile == "") == (ic.JWKSURL == ""):
		return errors.New("exactly one of jwks_file and jwks_url is required")
	case ic.ClockSkew < 0:
		return errors.New("clock_skew must not be negative")
	case ic.ClockSkew > maxClockSkew:
		return fmt.Errorf("clock_skew must be at most %s", maxClockSkew)
	case len(ic.Algorithms) == 0:
		return errors.New("algorithms must not be empty")
	case len(ic.TokenTypes) == 0:
		return errors.New("token_types must not be empty")
	}
	if ic.JWKSURL != "" {
		if err := checkJWKSURL(ic.JWKSURL); err != nil {
			return err
		}
		if ic.JWKSRefreshInterval < minJWKSInterval || ic.JWKSRefetchInterval < minJWKSInterval {
			return fmt.Errorf("jwks_refresh_interval and jwks_refetch_interval must be at least %s", minJWKSInterval)
		}
	} else if ic.JWKSRefreshInterval != 0 || ic.JWKSRefetchInterval != 0 {
		return errors.New("jwks_refresh_interval and jwks_refetch_interval apply to jwks_url only")
	}
	for i, a := range ic.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			// "none" and HS* land here: a public JWKS must never be
			// usable as a shared secret.
			return fmt.Errorf("algorithm %q is not allowed (allowed: %v)", a, supportedAlgorithms)
		}
		if slices.Contains(ic.Algorithms[:i], a) {
			return fmt.Errorf("algorithm %q is listed twice", a)
		}
	}
	for i, name := range ic.RequiredClaims {
		if name == "" || slices.Contains(ic.RequiredClaims[:i], name) {
			return fmt.Errorf("required_claims: %q is empty or listed twice", name)
		}
	}
	for _, t := range ic.TokenTypes {
		if t == "" {
			return errors.New("token_types: empty type")
		}
	}
	return nil
}

// checkJWKSURL insists on https, so keys cannot be swapped in transit,
// except on loopback, where tests and sidecar IdPs live.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("jwks_url %q must be an absolute URL without credentials or fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("jwks_url %q must be https (http only on a loopback host)", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.MaxChainDepth < 0:
		return errors.New("identity: max_chain_depth must not be negative")
	case c.MaxTokenBytes <= 0:
		return errors.New("identity: max_token_bytes must be positive")
	case c.CacheSize <= 0:
		return errors.New("identity: cache_size must be positive")
	case c.CacheTTL <= 0:
		return errors.New("identity: cache_ttl must be positive")
	case c.TenantClaim == "" || c.SessionClaim == "" || c.TaskClaim == "":
		return errors.New("identity: tenant_claim, session_claim and task_claim must not be empty")
	}
	if len(c.Issuers) == 0 {
		if err := c.IssuerConfig.Validate(); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		return nil
	}
	// Half a top-level issuer next to an issuers list is a mistake whose
	// intent cannot be guessed; refuse it rather than ignore it.
	if top := c.IssuerConfig; top.Issuer != "" || top.Audience != "" || top.JWKSFile != "" || top.JWKSURL != "" ||
		top.JWKSRefreshInterval != 0 || top.JWKSRefetchInterval != 0 || len(top.Algorithms) != 0 ||
		top.ClockSkew != 0 || len(top.RequiredClaims) != 0 || len(top.TokenTypes) != 0 || top.RequireTokenType {
		return errors.New("identity: with issuers, the top-level issuer fields must be unset")
	}
	seen := map[string]bool{}
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		if err := ic.Validate(); err != nil {
			return fmt.Errorf("identity: issuers[%d]: %w", i, err)
		}
		if seen[ic.Issuer] {
			return fmt.Errorf("identity: issuers[%d]: issuer %q is listed twice", i, ic.Issuer)
		}
		seen[ic.Issuer] = true
	}
	return nil
}
