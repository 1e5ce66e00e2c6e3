// Package identity verifies who is calling through the enforcer: it checks a
// bearer JWT against a JWKS (from a file or a URL) and turns its claims into
// the event.Identity that every audit event carries, including the RFC 8693
// delegation chain of agents acting for the principal.
package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/rampart-io/rampart/schema/event"
)

// Config says which tokens are accepted and where identity claims are found.
type Config struct {
	// Issuer is the required "iss" of every token.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's "aud" values.
	Audience string `yaml:"audience"`
	// JWKSFile is a local JSON Web Key Set. Exactly one of JWKSFile and
	// JWKSURL is set.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is fetched at start (which must succeed) and refreshed in the
	// background, so keys can rotate without a restart.
	JWKSURL string `yaml:"jwks_url"`
	// TenantClaim names the claim holding the tenant. Default "tenant".
	TenantClaim string `yaml:"tenant_claim"`
	// SessionClaim names the claim holding the agent session id. Default "sid".
	SessionClaim string `yaml:"session_claim"`
	// TaskClaim names the claim holding the task id. Default "task".
	TaskClaim string `yaml:"task_claim"`
	// SessionHeader supplies the session id when the token has none.
	// Default "Mcp-Session-Id".
	SessionHeader string `yaml:"session_header"`
	// TaskHeader supplies the task id when the token has none.
	// Default "X-Rampart-Task".
	TaskHeader string `yaml:"task_header"`
	// Algorithms are the accepted signature algorithms; "none" and HMAC
	// algorithms are never accepted. Default RS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is tolerated on exp, nbf and iat. Default 30s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// MaxChainDepth bounds nested "act" claims. Default 8.
	MaxChainDepth int `yaml:"max_chain_depth"`
}

// SetDefaults fills every unset field with its default.
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
	def(&c.TaskHeader, "X-Rampart-Task")
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"RS256", "ES256", "EdDSA"}
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 30 * time.Second
	}
	if c.MaxChainDepth == 0 {
		c.MaxChainDepth = 8
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("identity: issuer is required")
	case c.Audience == "":
		return errors.New("identity: audience is required")
	case (c.JWKSFile == "") == (c.JWKSURL == ""):
		return errors.New("identity: exactly one of jwks_file and jwks_url is required")
	case c.ClockSkew < 0:
		return errors.New("identity: clock_skew must not be negative")
	case c.MaxChainDepth < 0:
		return errors.New("identity: max_chain_depth must not be negative")
	}
	for _, a := range c.Algorithms {
		var alg jwa.SignatureAlgorithm
		if err := alg.Accept(a); err != nil {
			return fmt.Errorf("identity: algorithm %q: %w", a, err)
		}
		if alg == jwa.NoSignature || alg == jwa.HS256 || alg == jwa.HS384 || alg == jwa.HS512 {
			// Shared-secret algorithms make a public JWKS a signing key.
			return fmt.Errorf("identity: algorithm %q is not allowed", a)
		}
	}
	return nil
}

// Identity is a verified caller: the event identity plus the tenant, which
// events carry in their envelope.
type Identity struct {
	Tenant string
	event.Identity
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	keys   jwk.Set
	algs   []jwa.SignatureAlgorithm
	cancel context.CancelFunc // stops the JWKS refresh, if any
}

// New loads the key set and returns a Verifier. cfg is defaulted and
// validated first. Close stops the background JWKS refresh.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, cancel: func() {}}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, jwa.SignatureAlgorithm(a))
	}
	if cfg.JWKSFile != "" {
		set, err := jwk.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("identity: read jwks %s: %w", cfg.JWKSFile, err)
		}
		v.keys = set
		return v, nil
	}
	// The cache outlives ctx (which only bounds the first fetch); Close ends it.
	cctx, cancel := context.WithCancel(context.Background())
	cache := jwk.NewCache(cctx)
	client := &http.Client{Timeout: 10 * time.Second}
	if err := cache.Register(cfg.JWKSURL, jwk.WithHTTPClient(client), jwk.WithMinRefreshInterval(5*time.Minute)); err != nil {
		cancel()
		return nil, fmt.Errorf("identity: register jwks %s: %w", cfg.JWKSURL, err)
	}
	if _, err := cache.Refresh(ctx, cfg.JWKSURL); err != nil {
		cancel()
		return nil, fmt.Errorf("identity: fetch jwks %s: %w", cfg.JWKSURL, err)
	}
	v.keys = jwk.NewCachedSet(cache, cfg.JWKSURL)
	v.cancel = cancel
	return v, nil
}

// Close stops the background JWKS refresh.
func (v *Verifier) Close() { v.cancel() }

// Verify checks the bearer token of r and returns the caller. Session and
// task ids fall back to the configured headers when the token has none.
func (v *Verifier) Verify(r *http.Request) (*Identity, error) {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, &Error{Code: TokenMissing, Err: errors.New("no bearer token")}
	}
	id, err := v.VerifyToken(r.Context(), strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	if id.SessionID == "" {
		id.SessionID = r.Header.Get(v.cfg.SessionHeader)
	}
	if id.TaskID == "" {
		id.TaskID = r.Header.Get(v.cfg.TaskHeader)
	}
	return id, nil
}

// VerifyToken checks a compact JWS token and returns the caller it names.
func (v *Verifier) VerifyToken(ctx context.Context, token string) (*Identity, error) {
	if err := v.checkHeader(token); err != nil {
		return nil, err
	}
	tok, err := jwt.ParseString(token,
		// Never jwt.WithVerifyAuto: jku and x5u in a token are not followed.
		jwt.WithKeySet(v.keys, jws.WithRequireKid(true), jws.WithInferAlgorithmFromKey(true)),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAcceptableSkew(v.cfg.ClockSkew),
	)
	if err != nil {
		return nil, classify(err)
	}
	return v.identity(tok)
}

// checkHeader enforces the algorithm allow-list and that the key named by
// kid exists and is meant for that algorithm, before any signature work.
func (v *Verifier) checkHeader(token string) error {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return &Error{Code: TokenInvalid, Err: errors.New("not a compact JWS")}
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return &Error{Code: TokenInvalid, Err: fmt.Errorf("header: %w", err)}
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return &Error{Code: TokenInvalid, Err: fmt.Errorf("header: %w", err)}
	}
	alg := jwa.SignatureAlgorithm(h.Alg)
	if !slices.Contains(v.algs, alg) {
		return &Error{Code: TokenInvalid, Err: fmt.Errorf("algorithm %q not allowed", h.Alg)}
	}
	if h.Kid == "" {
		return &Error{Code: TokenInvalid, Err: errors.New("no kid in header")}
	}
	key, found := v.keys.LookupKeyID(h.Kid)
	if !found {
		return &Error{Code: TokenInvalid, Err: fmt.Errorf("unknown kid %q", h.Kid)}
	}
	if ka := key.Algorithm().String(); ka != "" && ka != h.Alg {
		return &Error{Code: TokenInvalid, Err: fmt.Errorf("kid %q is for %s, token says %s", h.Kid, ka, h.Alg)}
	}
	return nil
}

func (v *Verifier) identity(tok jwt.Token) (*Identity, error) {
	claims := tok.PrivateClaims()
	str := func(name string) (string, error) {
		val, ok := claims[name]
		if !ok || val == nil {
			return "", nil
		}
		s, ok := val.(string)
		if !ok {
			return "", &Error{Code: TokenClaims, Err: fmt.Errorf("claim %q is not a string", name)}
		}
		return s, nil
	}
	id := &Identity{Identity: event.Identity{Subject: tok.Subject(), Issuer: tok.Issuer()}}
	if id.Subject == "" {
		return nil, &Error{Code: TokenClaims, Err: errors.New("no sub claim")}
	}
	if strings.HasPrefix(id.Subject, "spiffe://") {
		id.SPIFFEID = id.Subject
	}
	var err error
	if id.Tenant, err = str(v.cfg.TenantClaim); err != nil {
		return nil, err
	}
	if id.SessionID, err = str(v.cfg.SessionClaim); err != nil {
		return nil, err
	}
	if id.TaskID, err = str(v.cfg.TaskClaim); err != nil {
		return nil, err
	}
	if id.Chain, err = chain(claims["act"], v.cfg.MaxChainDepth); err != nil {
		return nil, err
	}
	return id, nil
}

// chain reads nested RFC 8693 "act" claims. The outermost act is the
// current actor and each nested act an earlier one (RFC 8693 §4.1), so the
// walk yields actors newest first and the result is reversed: earliest
// first, current actor last, as event.Identity.CurrentActor expects.
func chain(act any, maxDepth int) ([]event.Actor, error) {
	var out []event.Actor
	for act != nil {
		m, ok := act.(map[string]any)
		if !ok {
			return nil, &Error{Code: TokenClaims, Err: errors.New(`"act" claim is not an object`)}
		}
		if len(out) == maxDepth {
			return nil, &Error{Code: ChainTooDeep, Err: fmt.Errorf("delegation chain deeper than %d", maxDepth)}
		}
		sub, _ := m["sub"].(string)
		if sub == "" {
			return nil, &Error{Code: TokenClaims, Err: errors.New(`"act" claim without "sub"`)}
		}
		iss, _ := m["iss"].(string)
		out = append(out, event.Actor{Subject: sub, Issuer: iss})
		act = m["act"]
	}
	slices.Reverse(out)
	return out, nil
}

// classify maps a jwx error to a stable code.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return &Error{Code: TokenExpired, Err: err}
	case errors.Is(err, jwt.ErrInvalidIssuer()),
		errors.Is(err, jwt.ErrInvalidAudience()),
		errors.Is(err, jwt.ErrRequiredClaim()):
		return &Error{Code: TokenClaims, Err: err}
	}
	return &Error{Code: TokenInvalid, Err: err}
}
