package backend

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is what a tool server tells the middleware about itself and the
// enforcer fleet it trusts.
//
//	issuer: https://rampart.acme.internal
//	audience: https://files.acme.internal
//	tenant: acme
//	name: files
//	report: {buffer: 4096, fail_closed: false}
type Config struct {
	// Issuer is the enforcer fleet's credentials issuer (the enforcer's
	// credentials.issuer): the only iss accepted. Required.
	Issuer string `yaml:"issuer" json:"issuer"`
	// Audience is this backend's own audience, as the enforcer's
	// destinations name it: a credential's aud must equal it. Required.
	Audience string `yaml:"audience" json:"audience"`
	// JWKSURL is where the fleet's keys are served. Default
	// Issuer + "/.well-known/jwks.json".
	JWKSURL string `yaml:"jwks_url" json:"jwks_url"`
	// Tenant, when set, is the one tenant this backend serves: another
	// tenant's credential is refused (wrong_tenant) and every report is
	// that tenant's. Empty: any tenant's credential, each report in the
	// credential's tenant.
	Tenant string `yaml:"tenant" json:"tenant"`
	// Name names this backend in its reports (instance "backend:<name>").
	// Default the audience's host.
	Name string `yaml:"name" json:"name"`
	// Leeway is the clock skew allowed on exp and nbf. Default 5s, at
	// most 1m.
	Leeway time.Duration `yaml:"leeway" json:"leeway"`
	// Keys tunes how the JWKS is cached.
	Keys KeysConfig `yaml:"keys" json:"keys"`
	// IntrospectionURL is the enforcer's RFC 7662 endpoint, asked about
	// each credential while the revocations bucket cannot be watched (no
	// JetStream given, or NATS unreachable). Empty: such requests are
	// refused (revocation_unavailable).
	IntrospectionURL string `yaml:"introspection_url" json:"introspection_url"`
	// IntrospectionTokenFile holds the bearer token this backend presents
	// to the introspection endpoint, which refuses unauthenticated callers
	// and answers only those its policy allows (destination
	// rampart.introspect): a token of the enforcer's identity issuers for
	// this backend's own workload, such as a Kubernetes projected service
	// account token. It is read on first use and again whenever the
	// endpoint answers 401, so a token rotated in place is picked up.
	// Required with IntrospectionURL unless WithIntrospectionToken is
	// given.
	IntrospectionTokenFile string `yaml:"introspection_token_file" json:"introspection_token_file"`
	// Report configures the backend_request events.
	Report ReportConfig `yaml:"report" json:"report"`
}

// KeysConfig tunes the JWKS cache.
type KeysConfig struct {
	// MaxAge is how long a fetched key set is used before it is fetched
	// again. Default 5m.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
	// MinRefresh is the least time between two fetches: a token naming an
	// unknown kid fetches the set again at most this often, so a flood of
	// made-up kids cannot flood the enforcer. Default 10s.
	MinRefresh time.Duration `yaml:"min_refresh" json:"min_refresh"`
	// Timeout bounds one fetch. Default 5s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
}

// ReportConfig configures how requests are put on the record.
type ReportConfig struct {
	// Buffer is how many reports may wait for JetStream. Past it a report
	// is dropped and counted (Stats.Dropped), never waited for. Default
	// 4096.
	Buffer int `yaml:"buffer" json:"buffer"`
	// FailClosed refuses verified requests (503 reporting_unavailable)
	// while reports cannot be made: no JetStream given, NATS disconnected,
	// or the buffer full. Default false: keep serving verified requests
	// and count the reports dropped.
	FailClosed bool `yaml:"fail_closed" json:"fail_closed"`
	// PublishTimeout bounds one attempt to publish a report; a failed one
	// is retried, with the same id, while the Verifier runs. Default 2s.
	PublishTimeout time.Duration `yaml:"publish_timeout" json:"publish_timeout"`
}

// Defaults.
const (
	DefaultLeeway         = 5 * time.Second
	MaxLeeway             = time.Minute
	DefaultKeysMaxAge     = 5 * time.Minute
	DefaultKeysMinRefresh = 10 * time.Second
	DefaultKeysTimeout    = 5 * time.Second
	DefaultReportBuffer   = 4096
	DefaultPublishTimeout = 2 * time.Second
)

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.JWKSURL == "" && c.Issuer != "" {
		c.JWKSURL = strings.TrimSuffix(c.Issuer, "/") + "/.well-known/jwks.json"
	}
	if c.Name == "" {
		if u, err := url.Parse(c.Audience); err == nil && u.Host != "" {
			c.Name = u.Host
		} else {
			c.Name = c.Audience
		}
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Keys.MaxAge == 0 {
		c.Keys.MaxAge = DefaultKeysMaxAge
	}
	if c.Keys.MinRefresh == 0 {
		c.Keys.MinRefresh = DefaultKeysMinRefresh
	}
	if c.Keys.Timeout == 0 {
		c.Keys.Timeout = DefaultKeysTimeout
	}
	if c.Report.Buffer == 0 {
		c.Report.Buffer = DefaultReportBuffer
	}
	if c.Report.PublishTimeout == 0 {
		c.Report.PublishTimeout = DefaultPublishTimeout
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("backend: issuer is required")
	case c.Audience == "":
		return errors.New("backend: audience is required")
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return fmt.Errorf("backend: leeway %s: want 0 to %s", c.Leeway, MaxLeeway)
	case c.Keys.MaxAge < 0 || c.Keys.MinRefresh < 0 || c.Keys.Timeout < 0:
		return errors.New("backend: keys max_age, min_refresh and timeout must not be negative")
	case c.Report.Buffer < 0 || c.Report.PublishTimeout < 0:
		return errors.New("backend: report buffer and publish_timeout must not be negative")
	}
	for name, s := range map[string]string{"jwks_url": c.JWKSURL, "introspection_url": c.IntrospectionURL} {
		if s == "" {
			continue
		}
		if u, err := url.Parse(s); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
			return fmt.Errorf("backend: %s %q: want an https URL (http only on a loopback host)", name, s)
		}
	}
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}
