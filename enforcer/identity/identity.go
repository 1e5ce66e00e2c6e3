// Package identity verifies who is calling through the enforcer: it checks a
// bearer JWT against the JWKS of one of the trusted issuers (RFC 8725
// hardened: strict structure, no token-supplied keys, an algorithm
// allow-list per issuer) and turns its claims into the event.Identity that
// every audit event carries, including the RFC 8693 delegation chain of
// agents acting for the principal and the workload's SPIFFE ID.
package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/subject"
)

// Identity is a verified caller: the event identity plus the tenant, which
// events carry in their envelope.
type Identity struct {
	Tenant string
	event.Identity
	// MayAct lists the parties the principal allows to act for it (the
	// RFC 8693 "may_act" claim), each with its issuer when the claim
	// names one, or nil when the token has none. Check an actor with
	// MayActAllows, never by subject alone.
	MayAct []event.Actor
	// JTI is the token's jti, "" when it has none: a revoked one (a task
	// credential of an ended task presented back) is refused.
	JTI string
	// Expires is the token's exp: nothing minted on the caller's
	// authority (a task credential) outlives it.
	Expires time.Time
}

// MayActAllows reports whether the principal allows the actor issuer's
// subject to act for it: true without a may_act claim; otherwise when an
// entry names the subject and, if the entry names an issuer, that issuer
// (a same-named subject of another issuer is someone else).
func (id *Identity) MayActAllows(issuer, subject string) bool {
	return id.MayAct == nil || mayActAllows(id.MayAct, event.Actor{Issuer: issuer, Subject: subject})
}

func mayActAllows(mayAct []event.Actor, a event.Actor) bool {
	for _, m := range mayAct {
		if m.Subject == a.Subject && (m.Issuer == "" || m.Issuer == a.Issuer) {
			return true
		}
	}
	return false
}

// clone copies id deeply enough that the caller may change it without
// touching the cached original.
func (id Identity) clone() *Identity {
	id.Chain = slices.Clone(id.Chain)
	id.MayAct = slices.Clone(id.MayAct)
	return &id
}

// Option changes how New builds a Verifier.
type Option func(*options)

type options struct {
	now    func() time.Time
	client *http.Client
	log    *slog.Logger
}

// WithClock sets the clock used for exp, nbf, iat, the cache and JWKS
// rate limits. Default time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithHTTPClient sets the client JWKS URLs are fetched with. The default
// times out after 10s and refuses redirects away from https.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithLogger sets where JWKS refresh failures are logged. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg      Config
	issuers  map[string]*issuer
	sigs     map[string]jws.Verifier // by alg; stateless, so shared
	cache    *tokenCache
	now      func() time.Time
	life     context.Context // ends at Close; bounds JWKS fetches
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeOne sync.Once
}

// issuer is one trusted issuer, ready to check tokens.
type issuer struct {
	cfg      IssuerConfig
	keys     *keySource
	validate []jwt.ValidateOption
}

// New loads every issuer's key set and returns a Verifier. cfg is
// defaulted and validated first. A jwks_url must answer now; afterwards
// fetch failures keep the last good keys. Close stops the refreshes.
func New(ctx context.Context, cfg Config, opts ...Option) (*Verifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now, log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = newHTTPClient()
	}
	life, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		cfg:     cfg,
		issuers: map[string]*issuer{},
		sigs:    map[string]jws.Verifier{},
		cache:   newTokenCache(cfg.CacheSize, cfg.CacheTTL),
		now:     o.now,
		life:    life,
		cancel:  cancel,
	}
	for _, a := range supportedAlgorithms {
		sv, err := jws.NewVerifier(jwa.SignatureAlgorithm(a))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("identity: %s verifier: %w", a, err)
		}
		v.sigs[a] = sv
	}
	var sources []*keySource
	for _, ic := range cfg.IssuerConfigs() {
		src := &keySource{
			issuer: ic.Issuer, url: ic.JWKSURL, client: o.client,
			refreshEvery: ic.JWKSRefreshInterval, refetchEvery: ic.JWKSRefetchInterval,
			now: o.now, log: o.log, onChange: v.cache.purge,
		}
		if ic.JWKSFile != "" {
			raw, err := os.ReadFile(ic.JWKSFile)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("identity: read jwks: %w", err)
			}
			set, skipped, err := parseKeySet(raw)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("identity: %s: %w", ic.JWKSFile, err)
			}
			if len(skipped) > 0 {
				o.log.Info("identity: jwks keys skipped", "issuer", ic.Issuer, "file", ic.JWKSFile, "skipped", skipped)
			}
			src.set.Store(set)
		} else {
			src.last = o.now()
			if err := src.fetch(ctx); err != nil {
				cancel()
				return nil, fmt.Errorf("identity: fetch jwks for %s: %w", ic.Issuer, err)
			}
			sources = append(sources, src)
		}
		is := &issuer{cfg: ic, keys: src, validate: []jwt.ValidateOption{
			jwt.WithClock(jwt.ClockFunc(o.now)),
			jwt.WithAcceptableSkew(ic.ClockSkew),
			jwt.WithIssuer(ic.Issuer),
			jwt.WithAudience(ic.Audience),
			jwt.WithRequiredClaim(jwt.ExpirationKey),
			jwt.WithRequiredClaim(jwt.SubjectKey),
		}}
		for _, name := range ic.RequiredClaims {
			is.validate = append(is.validate, jwt.WithRequiredClaim(name))
		}
		v.issuers[ic.Issuer] = is
	}
	for _, src := range sources {
		v.wg.Go(func() { src.run(life) })
	}
	return v, nil
}

// Close stops the background JWKS refreshes and waits for them to end.
func (v *Verifier) Close() {
	v.closeOne.Do(func() {
		v.cancel()
		v.wg.Wait()
	})
}

// Verify checks the bearer token in h (Authorization) and returns the
// caller. Session and task ids come from the token's claims only: ids a
// client sends in headers are its own choice, which the enforcer binds to
// the caller (package binding) and records as such.
func (v *Verifier) Verify(ctx context.Context, h http.Header) (*Identity, error) {
	values := h.Values("Authorization")
	if len(values) > 1 {
		// Two credentials: which one a proxy in front of us checked is a
		// guess, so take neither.
		return nil, fail(TokenMalformed, errors.New("more than one Authorization header"))
	}
	var auth string
	if len(values) == 1 {
		auth = values[0]
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, fail(TokenMissing, errors.New("no bearer token"))
	}
	return v.VerifyToken(ctx, strings.TrimSpace(token))
}

// VerifyToken checks a compact JWS token and returns the caller it names.
// A token verified before is answered from the cache until its exp or
// the cache TTL, whichever is first.
func (v *Verifier) VerifyToken(ctx context.Context, token string) (*Identity, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, fail(TokenTooLarge, fmt.Errorf("token of %d bytes, limit %d", len(token), v.cfg.MaxTokenBytes))
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	id, ok, gen := v.cache.get(key, now)
	if ok {
		return id.clone(), nil
	}
	got, exp, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	got.Expires = exp
	v.cache.put(key, *got, exp, now, gen)
	return got.clone(), nil
}

// verify is VerifyToken without the cache. It returns the identity and
// the token's exp. The order matters: structure and header first (cheap,
// no keys), then the issuer named by the unverified iss, whose algorithm
// list and keys alone are used, then the signature, and only then are the
// claims interpreted.
func (v *Verifier) verify(ctx context.Context, token string) (*Identity, time.Time, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, time.Time{}, fail(TokenTooLarge, fmt.Errorf("token of %d bytes, limit %d", len(token), v.cfg.MaxTokenBytes))
	}
	c, err := parseCompact(token)
	if err != nil {
		return nil, time.Time{}, err
	}
	is, ok := v.issuers[c.iss]
	if !ok {
		return nil, time.Time{}, fail(TokenIssuer, fmt.Errorf("issuer %q is not trusted", c.iss))
	}
	if c.hasTyp && !typeAccepted(c.typ, is.cfg.TokenTypes) {
		return nil, time.Time{}, fail(TokenHeader, fmt.Errorf("typ %q not accepted (want one of %v)", c.typ, is.cfg.TokenTypes))
	}
	if !c.hasTyp && is.cfg.RequireTokenType {
		return nil, time.Time{}, fail(TokenHeader, errors.New("no typ header"))
	}
	if !slices.Contains(is.cfg.Algorithms, c.alg) {
		return nil, time.Time{}, fail(TokenAlgorithm, fmt.Errorf("algorithm %q not allowed for issuer %q", c.alg, c.iss))
	}
	k, ok := is.keys.lookup(ctx, v.life, c.kid)
	if !ok {
		return nil, time.Time{}, fail(TokenUnknownKey, fmt.Errorf("issuer %q has no key %q", c.iss, c.kid))
	}
	if !k.fits(c.alg) {
		return nil, time.Time{}, fail(TokenAlgorithm, fmt.Errorf("key %q cannot verify %s", c.kid, c.alg))
	}
	if err := v.sigs[c.alg].Verify([]byte(c.signingInput), c.signature, k.pub); err != nil {
		return nil, time.Time{}, fail(TokenSignature, err)
	}

	tok, err := jwt.Parse(c.payload, jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		return nil, time.Time{}, fail(TokenClaims, err)
	}
	if err := jwt.Validate(tok, is.validate...); err != nil {
		return nil, time.Time{}, classify(err)
	}
	id, err := v.identity(tok, is.cfg.Tenant)
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, tok.Expiration(), nil
}

// identity interprets the verified claims of tok; issuerTenant is the
// issuer's configured tenant, "" when it has none.
func (v *Verifier) identity(tok jwt.Token, issuerTenant string) (*Identity, error) {
	claims := tok.PrivateClaims()
	str := func(name string) (string, error) {
		val, ok := claims[name]
		if !ok || val == nil {
			return "", nil
		}
		s, ok := val.(string)
		if !ok {
			return "", fail(TokenClaims, fmt.Errorf("claim %q is not a string", name))
		}
		return s, nil
	}
	id := &Identity{Identity: event.Identity{Subject: tok.Subject(), Issuer: tok.Issuer()}, JTI: tok.JwtID()}
	if id.Subject == "" {
		return nil, fail(TokenClaims, errors.New("no sub claim"))
	}
	if len(id.Subject) >= len(spiffeScheme) && strings.EqualFold(id.Subject[:len(spiffeScheme)], spiffeScheme) {
		// A JWT-SVID. "SPIFFE://" is refused rather than taken as a
		// plain subject that merely looks like a workload.
		if err := CheckSPIFFEID(id.Subject); err != nil {
			return nil, fail(TokenClaims, err)
		}
		id.SPIFFEID = id.Subject
	}
	var err error
	if id.Tenant, err = str(v.cfg.TenantClaim); err != nil {
		return nil, err
	}
	// Every verified caller belongs to a tenant, which names its subjects
	// and partitions its state: without one its events would be filed
	// with those of unidentified callers, and one whose subject token
	// cannot be formed could not be recorded at all. An issuer bound to a
	// tenant vouches for no other.
	switch {
	case issuerTenant != "" && id.Tenant == "":
		id.Tenant = issuerTenant
	case issuerTenant != "" && id.Tenant != issuerTenant:
		// A code of its own: a token reaching into another tenant is an
		// attack signal, not a malformed claim.
		return nil, fail(TokenTenantForeign, fmt.Errorf("%s claim %q, but the issuer is %q's", v.cfg.TenantClaim, id.Tenant, issuerTenant))
	case id.Tenant == "":
		return nil, fail(TokenClaims, fmt.Errorf("no %s claim", v.cfg.TenantClaim))
	}
	if _, err := subject.EscapeToken(id.Tenant); err != nil {
		return nil, fail(TokenClaims, fmt.Errorf("%s claim of %d bytes escapes to more than %d", v.cfg.TenantClaim, len(id.Tenant), subject.MaxTokenLen))
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
	mayAct, err := parseMayAct(claims["may_act"])
	if err != nil {
		return nil, err
	}
	if mayAct != nil {
		id.MayAct = mayAct
		if err := checkDelegation(id.Chain, mayAct); err != nil {
			return nil, err
		}
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
			return nil, fail(TokenClaims, errors.New(`"act" claim is not an object`))
		}
		if len(out) == maxDepth {
			return nil, fail(ChainTooDeep, fmt.Errorf("delegation chain deeper than %d", maxDepth))
		}
		a, err := actor(m, "act")
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		act = m["act"]
	}
	slices.Reverse(out)
	return out, nil
}

// actor reads the sub and optional iss of an act or may_act object.
func actor(m map[string]any, claim string) (event.Actor, error) {
	sub, _ := m["sub"].(string)
	if sub == "" {
		return event.Actor{}, fail(TokenClaims, fmt.Errorf("%q claim without a string \"sub\"", claim))
	}
	iss, ok := m["iss"]
	if !ok {
		return event.Actor{Subject: sub}, nil
	}
	s, ok := iss.(string)
	if !ok {
		return event.Actor{}, fail(TokenClaims, fmt.Errorf("%q claim has a non-string \"iss\"", claim))
	}
	return event.Actor{Subject: sub, Issuer: s}, nil
}

// parseMayAct reads the RFC 8693 §4.4 "may_act" claim: one object naming
// a party allowed to act for the subject. A list of such objects is
// accepted too, as some issuers allow several. nil means no claim.
func parseMayAct(v any) ([]event.Actor, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		a, err := actor(v, "may_act")
		if err != nil {
			return nil, err
		}
		return []event.Actor{a}, nil
	case []any:
		if len(v) == 0 {
			return nil, fail(TokenClaims, errors.New(`"may_act" claim is an empty list`))
		}
		out := make([]event.Actor, 0, len(v))
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fail(TokenClaims, errors.New(`"may_act" list holds a non-object`))
			}
			a, err := actor(m, "may_act")
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	return nil, fail(TokenClaims, errors.New(`"may_act" claim is not an object`))
}

// checkDelegation refuses a token whose current actor the principal did
// not allow in may_act. An entry with an iss matches only an actor from
// that issuer. Without an act claim nobody acts for the principal, so
// there is nothing to check.
func checkDelegation(chain []event.Actor, mayAct []event.Actor) error {
	if len(chain) == 0 {
		return nil
	}
	cur := chain[len(chain)-1]
	if mayActAllows(mayAct, cur) {
		return nil
	}
	return fail(DelegationNotAllowed, fmt.Errorf("actor %q is not in may_act", cur.Subject))
}

// classify maps a jwx validation error to a stable code.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return fail(TokenExpired, err)
	case errors.Is(err, jwt.ErrTokenNotYetValid()), errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return fail(TokenNotYetValid, err)
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return fail(TokenIssuer, err)
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return fail(TokenAudience, err)
	}
	return fail(TokenClaims, err)
}
