package credential

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/rampart-io/rampart/schema/event"
)

// TokenType is the typ of minted tokens: a JWT access token (RFC 9068),
// which a verifier can tell from the ID and agent tokens it also sees.
const TokenType = "at+jwt"

// Errors of Mint.
var (
	ErrNoPrincipal = errors.New("credential: no principal to mint for")
	ErrDeadline    = errors.New("credential: the deadline has passed")
)

// Request is what one token is minted for.
type Request struct {
	// Tenant, Issuer and Subject name the principal, as verified.
	Tenant, Issuer, Subject string
	// Chain is the delegation chain, earliest actor first (event.Identity):
	// the token carries it whole as nested act claims.
	Chain []event.Actor
	// TaskID and SessionID are the caller's bound task and session ids.
	TaskID, SessionID string
	Audience          string
	Scope             []string
	TTL               time.Duration
	// Deadline, when set, is the latest a token may live: the earlier of
	// the task's end and the exp of the caller's own token.
	Deadline time.Time
}

// key is r's identity in the cache: every field, length-prefixed so that
// no two requests share one.
func (r *Request) key() string {
	n := len(r.Tenant) + len(r.Issuer) + len(r.Subject) + len(r.TaskID) + len(r.SessionID) + len(r.Audience) + 64
	for _, a := range r.Chain {
		n += len(a.Subject) + len(a.Issuer) + 8
	}
	for _, s := range r.Scope {
		n += len(s) + 4
	}
	b := make([]byte, 0, n)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str(r.Tenant)
	str(r.Issuer)
	str(r.Subject)
	b = binary.AppendUvarint(b, uint64(len(r.Chain)))
	for _, a := range r.Chain {
		str(a.Subject)
		str(a.Issuer)
	}
	str(r.TaskID)
	str(r.SessionID)
	str(r.Audience)
	b = binary.AppendUvarint(b, uint64(len(r.Scope)))
	for _, s := range r.Scope {
		str(s)
	}
	b = binary.AppendVarint(b, int64(r.TTL))
	b = binary.AppendVarint(b, r.Deadline.UnixNano())
	return string(b)
}

// Token is a minted credential.
type Token struct {
	// Raw is the compact JWS, to send as "Authorization: Bearer <Raw>".
	Raw      string
	JTI      string
	KeyID    string
	Audience string
	Scope    []string
	IssuedAt time.Time
	Expires  time.Time
}

// fresh reports whether more than a quarter of t's life remains at now.
func (t Token) fresh(now time.Time) bool {
	return t.Expires.Sub(now) > t.Expires.Sub(t.IssuedAt)/4
}

// Minter mints credentials. It is safe for concurrent use.
type Minter struct {
	cfg   Config
	keys  *KeySet
	cache *Cache
	now   func() time.Time
	mints flights
}

// Option changes how New builds a Minter.
type Option func(*Minter)

// WithClock sets the clock for iat, exp and the cache's freshness.
func WithClock(now func() time.Time) Option { return func(m *Minter) { m.now = now } }

// New builds a Minter from cfg, which it defaults and validates, loading
// its keys.
func New(cfg Config, opts ...Option) (*Minter, error) {
	cfg.SetDefaults()
	m := &Minter{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(m)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var err error
	if m.keys, err = LoadKeys(cfg.KeyFile, cfg.NextKeyFile, cfg.RetiringKeyFiles...); err != nil {
		return nil, err
	}
	m.cache = NewCache(cfg.Cache)
	return m, nil
}

// Keys is the key set the minter signs with and publishes.
func (m *Minter) Keys() *KeySet { return m.keys }

// Cached returns the token kept for r, if one is still fresh.
func (m *Minter) Cached(r *Request) (Token, bool) { return m.cache.Get(r, m.now()) }

// Keep caches tok for r. The enforcer keeps a token only once its mint
// is recorded, so no token is ever reused whose issue the record lacks.
func (m *Minter) Keep(r *Request, tok Token) { m.cache.Put(r, tok) }

// Lead waits until no one else is minting for r's cache key and returns
// the function that lets the next one in. A caller that missed the cache
// leads, looks in the cache again (the one before it may have kept a
// token), and only then mints; it releases once the token is kept or
// abandoned.
func (m *Minter) Lead(ctx context.Context, r *Request) (release func(), err error) {
	return m.mints.acquire(ctx, r.key())
}

// CachedCount is the number of tokens cached for tenant.
func (m *Minter) CachedCount(tenant string) int { return m.cache.Len(tenant) }

// Claims are a minted token's claims, in the order they are written: what
// Verify returns and introspection answers.
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	Scope     string `json:"scope,omitempty"`
	Tenant    string `json:"tenant,omitempty"`
	TaskID    string `json:"task_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Act       *Act   `json:"act,omitempty"`
	JTI       string `json:"jti"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
}

// Act is one RFC 8693 act: the outermost the current actor, each nested
// one the actor before it.
type Act struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Act     *Act   `json:"act,omitempty"`
}

// Mint signs a new token for r; it does not cache it (see Keep).
func (m *Minter) Mint(r *Request) (Token, error) {
	if r.Subject == "" {
		return Token{}, ErrNoPrincipal
	}
	now := m.now()
	ttl := min(r.TTL, m.cfg.MaxTTL)
	if ttl <= 0 {
		ttl = min(DefaultTTL, m.cfg.MaxTTL)
	}
	exp := now.Add(ttl)
	if !r.Deadline.IsZero() {
		if !r.Deadline.After(now) {
			return Token{}, ErrDeadline
		}
		exp = minTime(exp, r.Deadline)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("credential: jti: %w", err)
	}
	c := Claims{
		Issuer: m.cfg.Issuer, Subject: r.Subject, Audience: r.Audience, Scope: strings.Join(r.Scope, " "),
		Tenant: r.Tenant, TaskID: r.TaskID, SessionID: r.SessionID, Act: actOf(r.Chain),
		JTI: base64.RawURLEncoding.EncodeToString(id[:]), IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: exp.Unix(),
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("credential: claims: %w", err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, TokenType)
	_ = h.Set(jws.KeyIDKey, m.keys.kid)
	raw, err := jws.Sign(payload, jws.WithKey(m.keys.alg, m.keys.signKey, jws.WithProtectedHeaders(h)))
	if err != nil {
		return Token{}, fmt.Errorf("credential: sign: %w", err)
	}
	return Token{Raw: string(raw), JTI: c.JTI, KeyID: m.keys.kid, Audience: r.Audience, Scope: r.Scope,
		IssuedAt: time.Unix(c.IssuedAt, 0), Expires: time.Unix(c.Expires, 0)}, nil
}

// actOf nests chain (earliest first) as act claims, the last actor
// outermost.
func actOf(chain []event.Actor) *Act {
	var act *Act
	for _, a := range chain {
		act = &Act{Subject: a.Subject, Issuer: a.Issuer, Act: act}
	}
	return act
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
