package enforcer

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/component/memlimit"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/binding"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// Modes the enforcer serves in; every mode runs the same decision path and
// records the same events, only the way the request arrives and the answer
// leaves differ.
const (
	// ModeProxy forwards allowed requests to Upstream itself.
	ModeProxy = "proxy"
	// ModeForwardAuth answers a gateway's subrequest (nginx auth_request,
	// Caddy forward_auth, Traefik forwardAuth) at ForwardAuth.Path.
	ModeForwardAuth = "forward_auth"
	// ModeExtAuthzGRPC serves Envoy's ext_authz v3 gRPC service on
	// ExtAuthz.GRPCListen.
	ModeExtAuthzGRPC = "ext_authz_grpc"
	// ModeExtAuthzHTTP serves Envoy's ext_authz HTTP service under
	// ExtAuthz.HTTPPathPrefix.
	ModeExtAuthzHTTP = "ext_authz_http"
)

var allModes = []string{ModeProxy, ModeForwardAuth, ModeExtAuthzGRPC, ModeExtAuthzHTTP}

// Config is the enforcer's configuration file. Unknown keys are errors.
type Config struct {
	// Listen is the HTTP address agents (proxy mode) and gateways
	// (forward_auth, ext_authz_http) connect to. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// Modes are the ways requests reach the enforcer, any of "proxy",
	// "forward_auth", "ext_authz_grpc", "ext_authz_http". Default [proxy].
	Modes []string `yaml:"modes"`
	// Upstream is the URL of the backend (an MCP server or any HTTP API)
	// that allowed requests are forwarded to. Required in proxy mode.
	Upstream string `yaml:"upstream"`
	// Instance names this enforcer in events; each instance numbers its
	// events densely. It may not begin with "correlator:", the correlators'
	// own prefix. Default: the host name.
	Instance string `yaml:"instance"`
	// Identity says which bearer tokens are accepted.
	Identity identity.Config `yaml:"identity"`
	// PolicyFile is the YAML policy, relative to the config file. Required.
	PolicyFile string `yaml:"policy_file"`
	// PolicyReloadInterval is how often the policy file (or bundle
	// directory) is checked for changes; a change that compiles replaces the
	// policy atomically, one that does not is recorded and ignored.
	// Default 2s.
	PolicyReloadInterval time.Duration `yaml:"policy_reload_interval"`
	// NATS is where events are published; requests are refused while it
	// cannot acknowledge them.
	NATS audit.Config `yaml:"nats"`
	// MaxBodyBytes bounds a request body; larger requests get 413.
	// Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInFlight bounds requests handled at once; more get 503
	// "overloaded" at once (not recorded: like a connection refused).
	// Default 1024.
	MaxInFlight int `yaml:"max_inflight"`
	// MemoryLimitMiB is the soft memory limit `rampart enforcer` gives the
	// Go runtime (as GOMEMLIMIT does, which takes precedence): the garbage
	// collector runs as memory nears it (GOGC=off, unless GOGC is set)
	// instead of the process growing, so an enforcer beside a gateway
	// stays small under overload and spends little on collection below it.
	// -1: none, and the runtime's defaults. Default 40.
	MemoryLimitMiB memlimit.MiB `yaml:"memory_limit_mib"`
	// RecordHeaders names request headers recorded in events and shown to
	// policy as headers["name"] (lower case). Authorization and cookies are
	// never recorded, whatever this says.
	RecordHeaders []string `yaml:"record_headers"`
	// RPC bounds JSON-RPC bodies: nesting depth (default 64). Batches are
	// refused whatever their length (MCP 2025-06-18 removed them).
	RPC mcp.Limits `yaml:"rpc"`
	// MCP names the upstream's MCP endpoints (mcp.paths, path prefixes),
	// where only well-formed MCP requests pass: a POST of one JSON-RPC
	// message, a GET or a DELETE without a body. Default: every path.
	MCP mcp.Endpoints `yaml:"mcp"`
	// Budgets bounds the counters of rule call budgets, held in memory:
	// per tenant (default 10000) and in total (default 100000). A new
	// session or task beyond either is refused with budget_table_full.
	Budgets policy.BudgetLimits `yaml:"budgets"`
	// ToolSchemas pins a JSON Schema per tool (from here, or from the
	// backend's tools/list answers); calls that violate it are refused
	// before policy.
	ToolSchemas toolschema.Config `yaml:"tool_schemas"`
	// Destinations maps host, path and tool to the destination and data
	// class that policy sees and events record.
	Destinations destination.Config `yaml:"destinations"`
	// Credentials configures the tokens the enforcer mints in place of
	// the caller's own for destinations with a credential (see package
	// credential): the issuer URL and signing keys. Unset: no destination
	// may ask for a credential. Proxy mode only: a gateway in forward_auth
	// or ext_authz mode would pass the caller's own credentials on.
	Credentials credential.Config `yaml:"credentials"`
	// Tasks bounds the tasks orchestrators declare (POST /_rampart/tasks)
	// and those a call's task id starts: their longest life, how long
	// one may idle, and how often each instance looks for ended ones.
	// Task state is shared by every instance through JetStream
	// (RAMPART_TASKS).
	Tasks task.Config `yaml:"tasks"`
	// Revocations says how current this instance's view of ended tasks
	// and revoked credentials (RAMPART_REVOCATIONS) must be for it to hand
	// out credentials, and what happens when it is not.
	Revocations credential.WatchConfig `yaml:"revocations"`
	// MaxHeaderBytes bounds the request line and headers; larger requests
	// get 431. Default 32 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// H2C accepts HTTP/2 without TLS (prior knowledge) on Listen, for
	// gateways that speak h2 to their upstreams. With TLS, h2 is always
	// offered through ALPN. Default false.
	H2C bool `yaml:"h2c"`
	// Timeouts bound every phase of a connection, so slow clients cannot
	// hold the enforcer's connections.
	Timeouts Timeouts `yaml:"timeouts"`
	// TLS, when cert_file is set, makes Listen serve HTTPS, optionally
	// verifying client certificates (mTLS).
	TLS TLSConfig `yaml:"tls"`
	// ForwardAuth configures the forward-auth endpoint.
	ForwardAuth ForwardAuthConfig `yaml:"forward_auth"`
	// ExtAuthz configures the Envoy ext_authz services.
	ExtAuthz ExtAuthzConfig `yaml:"ext_authz"`
	// TrustedProxies are the CIDRs of the gateways whose forwarded-request
	// headers (forward_auth) and checks (ext_authz) are believed. A check
	// from any other address is refused with proxy_untrusted.
	// Default loopback: ["127.0.0.0/8", "::1/128"].
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SessionBindings bounds the table binding client-sent session and
	// task ids to the principal that holds them (identity.session_header,
	// identity.task_header).
	SessionBindings binding.Config `yaml:"session_bindings"`
	// ForwardedFor are the CIDRs of proxies in front of proxy mode whose
	// X-Forwarded-For the enforcer extends; from anyone else it is dropped
	// and starts afresh with the peer's address. Default none: an agent
	// on the enforcer's own host is not a proxy.
	ForwardedFor []string `yaml:"forwarded_for"`
}

// Timeouts of the HTTP server. Zero means the default; there is no way to
// disable ReadHeaderTimeout, ReadTimeout or IdleTimeout.
type Timeouts struct {
	// ReadHeader bounds reading the request line and headers; it is what
	// cuts off slowloris clients. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Read bounds reading a whole request, body included. Default 30s.
	Read time.Duration `yaml:"read"`
	// Write bounds writing a response, from the end of the request
	// headers. Default 0: none, because streamed (SSE) MCP responses are
	// long-lived; set it when no stream is proxied.
	Write time.Duration `yaml:"write"`
	// Idle bounds how long a keep-alive connection waits for its next
	// request. Default 120s.
	Idle time.Duration `yaml:"idle"`
	// Shutdown bounds the graceful shutdown when the enforcer stops; requests
	// still running then are cut off. Default 15s.
	Shutdown time.Duration `yaml:"shutdown"`
}

// TLSConfig makes the enforcer terminate TLS, and optionally mTLS.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate chain and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the PEM CAs that client certificates must chain
	// to. A verified client certificate must be an X.509-SVID (exactly one
	// URI SAN, a workload SPIFFE ID, not a CA), or the request is refused
	// with client_cert_invalid; its SPIFFE ID is recorded as the caller's. A bearer JWT is still required: the certificate
	// says which workload connects, the token on whose behalf; when the
	// token's subject is itself a SPIFFE ID (a JWT-SVID) it must match the
	// certificate's, or the request is refused with spiffe_mismatch.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses connections without a verified client
	// certificate. Without it a certificate is verified when presented.
	RequireClientCert bool `yaml:"require_client_cert"`
}

// Enabled reports whether TLS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// ForwardAuthConfig is the gateway subrequest endpoint.
type ForwardAuthConfig struct {
	// Path is where gateways send their auth subrequests. In proxy mode
	// this path is answered, never forwarded. Default "/_rampart/auth".
	Path string `yaml:"path"`
	// Gateway is the kind of gateway that sends the subrequests: "nginx"
	// (X-Original-Method, X-Original-URI, X-Original-Host, set with
	// proxy_set_header), "caddy" or "traefik" (X-Forwarded-Method,
	// X-Forwarded-Uri, X-Forwarded-Host, which they set themselves). Only
	// that gateway's headers are read; a subrequest carrying another
	// spelling of them came from the client and is refused. Required in
	// forward_auth mode.
	Gateway string `yaml:"gateway"`
	// SecretFile holds the secret the gateway sends in
	// X-Rampart-Gateway-Secret with every subrequest (one line, at least
	// 16 characters); a subrequest without it is refused with
	// gateway_unauthenticated. Required in forward_auth mode: without it,
	// any process that reaches the endpoint records decisions.
	SecretFile string `yaml:"secret_file"`
}

// ExtAuthzConfig is the Envoy ext_authz services.
type ExtAuthzConfig struct {
	// GRPCListen is the address of the gRPC Authorization service
	// (ext_authz_grpc mode). Default "127.0.0.1:9191".
	GRPCListen string `yaml:"grpc_listen"`
	// HTTPPathPrefix is Envoy's http_service path_prefix (ext_authz_http
	// mode). Default "/_rampart/ext_authz".
	HTTPPathPrefix string `yaml:"http_path_prefix"`
	// SecretFile, when set, holds a secret (one line, at least 16
	// characters) every check must carry: gRPC metadata
	// x-rampart-gateway-secret (Envoy's grpc_service.initial_metadata) or
	// the check request's X-Rampart-Gateway-Secret header
	// (authorization_request.headers_to_add). Without it checks are
	// believed by address (trusted_proxies) alone.
	SecretFile string `yaml:"secret_file"`
}

// SetDefaults fills every unset field, in this struct and the component
// configs it holds, with its default.
func (c *Config) SetDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defList := func(p *[]string, v ...string) {
		if len(*p) == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Listen, "127.0.0.1:8080")
	defList(&c.Modes, ModeProxy)
	if c.Instance == "" {
		if h, err := os.Hostname(); err == nil {
			c.Instance = h
		}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = mcp.DefaultMaxBodyBytes
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	defDur(&c.Timeouts.ReadHeader, 10*time.Second)
	defDur(&c.Timeouts.Read, 30*time.Second)
	defDur(&c.Timeouts.Idle, 120*time.Second)
	defDur(&c.Timeouts.Shutdown, 15*time.Second)
	def(&c.ForwardAuth.Path, "/_rampart/auth")
	def(&c.ExtAuthz.GRPCListen, "127.0.0.1:9191")
	def(&c.ExtAuthz.HTTPPathPrefix, "/_rampart/ext_authz")
	defList(&c.TrustedProxies, "127.0.0.0/8", "::1/128")
	c.Identity.SetDefaults()
	c.NATS.SetDefaults()
	if c.PolicyReloadInterval == 0 {
		c.PolicyReloadInterval = policy.DefaultPollInterval
	}
	c.RPC.SetDefaults()
	c.MCP.SetDefaults()
	c.Budgets.SetDefaults()
	c.ToolSchemas.SetDefaults()
	c.Destinations.SetDefaults()
	if c.Credentials.Enabled() {
		c.Credentials.SetDefaults()
	}
	c.SessionBindings.SetDefaults()
	c.Tasks.SetDefaults()
	c.Revocations.SetDefaults()
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1024
	}
	if c.MemoryLimitMiB == 0 {
		c.MemoryLimitMiB = 40
	}
}

// Enabled reports whether mode is one of c's modes.
func (c *Config) Enabled(mode string) bool { return slices.Contains(c.Modes, mode) }

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	if c.MaxInFlight < 0 {
		return errors.New("enforcer: max_inflight must not be negative")
	}
	if err := c.MemoryLimitMiB.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	for _, h := range c.RecordHeaders {
		switch strings.ToLower(h) {
		case "authorization", "proxy-authorization", "cookie", "set-cookie":
			return fmt.Errorf("enforcer: record_headers: %s carries credentials and is never recorded", h)
		case "":
			return errors.New("enforcer: record_headers: empty header name")
		}
	}
	if err := c.RPC.Validate(); err != nil {
		return fmt.Errorf("enforcer: rpc: %w", err)
	}
	if err := c.MCP.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.Budgets.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.ToolSchemas.Validate(); err != nil {
		return fmt.Errorf("enforcer: tool_schemas: %w", err)
	}
	if err := c.SessionBindings.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.Destinations.Validate(); err != nil {
		return fmt.Errorf("enforcer: destinations: %w", err)
	}
	if err := c.validateCredentials(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.Tasks.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.Revocations.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	for _, m := range c.Modes {
		if !slices.Contains(allModes, m) {
			return fmt.Errorf("enforcer: modes: unknown mode %q (want one of %s)", m, strings.Join(allModes, ", "))
		}
	}
	if c.Enabled(ModeProxy) || c.Upstream != "" {
		if c.Upstream == "" {
			return errors.New("enforcer: upstream is required in proxy mode")
		}
		u, err := url.Parse(c.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("enforcer: upstream %q must be an http or https URL", c.Upstream)
		}
	}
	switch {
	case c.Instance == "":
		return errors.New("enforcer: instance is required (no host name to default to)")
	case strings.HasPrefix(c.Instance, "correlator:"):
		// Correlators' records are named so, and detections skip them.
		return fmt.Errorf("enforcer: instance %q: names beginning correlator: are correlators'", c.Instance)
	case c.PolicyFile == "":
		return errors.New("enforcer: policy_file is required")
	case c.MaxBodyBytes < 0:
		return errors.New("enforcer: max_body_bytes must not be negative")
	case c.MaxHeaderBytes < 0:
		return errors.New("enforcer: max_header_bytes must not be negative")
	case c.Timeouts.ReadHeader < 0 || c.Timeouts.Read < 0 || c.Timeouts.Write < 0 || c.Timeouts.Idle < 0 || c.Timeouts.Shutdown < 0:
		return errors.New("enforcer: timeouts must not be negative")
	case !strings.HasPrefix(c.ForwardAuth.Path, "/"):
		return fmt.Errorf("enforcer: forward_auth.path %q must start with /", c.ForwardAuth.Path)
	case c.Enabled(ModeForwardAuth) && gatewayHeaders[c.ForwardAuth.Gateway] == (originHeaders{}):
		return fmt.Errorf("enforcer: forward_auth.gateway %q: want nginx, caddy or traefik", c.ForwardAuth.Gateway)
	case c.Enabled(ModeForwardAuth) && c.ForwardAuth.SecretFile == "":
		return errors.New("enforcer: forward_auth.secret_file is required in forward_auth mode")
	case !strings.HasPrefix(c.ExtAuthz.HTTPPathPrefix, "/"):
		return fmt.Errorf("enforcer: ext_authz.http_path_prefix %q must start with /", c.ExtAuthz.HTTPPathPrefix)
	case c.Enabled(ModeForwardAuth) && c.Enabled(ModeExtAuthzHTTP) &&
		strings.HasPrefix(c.ForwardAuth.Path, c.ExtAuthz.HTTPPathPrefix):
		return errors.New("enforcer: forward_auth.path must not lie under ext_authz.http_path_prefix")
	case c.TLS.Enabled() != (c.TLS.KeyFile != ""):
		return errors.New("enforcer: tls.cert_file and tls.key_file go together")
	case !c.TLS.Enabled() && (c.TLS.ClientCAFile != "" || c.TLS.RequireClientCert):
		return errors.New("enforcer: tls.client_ca_file needs tls.cert_file and tls.key_file")
	case c.TLS.RequireClientCert && c.TLS.ClientCAFile == "":
		return errors.New("enforcer: tls.require_client_cert needs tls.client_ca_file")
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("enforcer: trusted_proxies: %w", err)
	}
	if _, err := parsePrefixes(c.ForwardedFor); err != nil {
		return fmt.Errorf("enforcer: forwarded_for: %w", err)
	}
	if err := c.Identity.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	if err := c.NATS.Validate(); err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	return nil
}

// parsePrefixes reads CIDRs; a bare address is a single-address prefix.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
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
	for _, p := range []*string{&c.PolicyFile, &c.TLS.CertFile, &c.TLS.KeyFile, &c.TLS.ClientCAFile,
		&c.NATS.Spool.Dir, &c.NATS.Checkpoint.KeyFile, &c.ForwardAuth.SecretFile, &c.ExtAuthz.SecretFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c.Identity.ResolvePaths(dir)
	c.ToolSchemas.ResolvePaths(dir)
	c.SetDefaults()
	return c, nil
}

// validateCredentials holds the destinations' credential specs to the
// credentials section: a spec needs an issuer and keys, a ttl within
// max_ttl, and a mode in which the enforcer forwards the request itself.
func (c *Config) validateCredentials() error {
	specs := c.Destinations.Specs()
	if !c.Credentials.Enabled() {
		if len(specs) > 0 {
			return errors.New("destinations: a credential needs the credentials section (issuer, key_file)")
		}
		return nil
	}
	if err := c.Credentials.Validate(); err != nil {
		return err
	}
	if len(c.Modes) != 1 || c.Modes[0] != ModeProxy {
		return fmt.Errorf("credentials: modes %v: only proxy mode replaces the caller's credentials itself", c.Modes)
	}
	for _, s := range specs {
		if s.TTL > c.Credentials.MaxTTL {
			return fmt.Errorf("destinations: credential for %s: ttl %s above credentials.max_ttl %s", s.Audience, s.TTL, c.Credentials.MaxTTL)
		}
	}
	return nil
}

// taskRecordTTL is how long the task and revocation buckets keep a
// record: a task's longest life plus its last credential's, and an hour's
// margin for clocks and late sweeps.
func (c *Config) taskRecordTTL() time.Duration {
	maxTTL := c.Credentials.MaxTTL
	if maxTTL == 0 {
		maxTTL = credential.DefaultMaxTTL
	}
	return c.Tasks.MaxTaskDuration + maxTTL + time.Hour
}
