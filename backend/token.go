package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TokenType is the typ of Rampart credentials (RFC 9068 access tokens).
const TokenType = "at+jwt"

// maxTokenBytes bounds a presented token: a credential is a few hundred
// bytes, its act chain at most a few kilobytes.
const maxTokenBytes = 16 << 10

// Credential is a verified Rampart credential: who it was minted for,
// for which task and scope. The handler behind the middleware finds it
// with CredentialFrom.
type Credential struct {
	Issuer    string
	Subject   string
	Audience  string
	Scope     []string
	Tenant    string
	TaskID    string
	SessionID string
	// Chain is the delegation chain from the nested act claims, earliest
	// actor first, the current actor last.
	Chain     []Actor
	JTI       string
	IssuedAt  time.Time
	NotBefore time.Time
	Expires   time.Time
	// Raw is the compact token as presented.
	Raw string
}

// Actor is one link of a credential's delegation chain.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
}

// claims are a credential's claims as the enforcer writes them.
type claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Scope     string          `json:"scope"`
	Tenant    string          `json:"tenant"`
	TaskID    string          `json:"task_id"`
	SessionID string          `json:"session_id"`
	Act       *actClaim       `json:"act"`
	JTI       string          `json:"jti"`
	IssuedAt  *int64          `json:"iat"`
	NotBefore *int64          `json:"nbf"`
	Expires   *int64          `json:"exp"`
}

type actClaim struct {
	Subject string    `json:"sub"`
	Issuer  string    `json:"iss"`
	Act     *actClaim `json:"act"`
}

// maxActDepth bounds the nested act claims read.
const maxActDepth = 32

// verifyError is a failed verification: its stable code, and the
// credential when its signature did verify (an expired or revoked one),
// so the report can name its jti.
type verifyError struct {
	code string
	cred *Credential
}

func (e *verifyError) Error() string { return "backend: " + e.code }

func fail(code string, c *Credential) error { return &verifyError{code: code, cred: c} }

// allowedAlgs are the only signature algorithms accepted, each with the
// key type it needs: the enforcer signs with Ed25519 or P-256 alone.
var allowedAlgs = map[string]jwa.KeyType{
	jwa.EdDSA.String(): jwa.OKP,
	jwa.ES256.String(): jwa.EC,
}

// verifier checks a token's signature, header and claims.
type verifier struct {
	cfg  *Config
	keys *keySet
	now  func() time.Time
}

// verify checks raw and returns its credential. Errors are *verifyError
// with their code.
func (v *verifier) verify(ctx context.Context, raw string) (*Credential, error) {
	if len(raw) > maxTokenBytes || strings.Count(raw, ".") != 2 {
		return nil, fail(CodeInvalidCredential, nil)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, fail(CodeInvalidCredential, nil)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	alg := h.Algorithm().String()
	kty, ok := allowedAlgs[alg]
	if !ok || !strings.EqualFold(strings.TrimPrefix(strings.ToLower(h.Type()), "application/"), TokenType) || h.KeyID() == "" ||
		h.JWK() != nil || h.JWKSetURL() != "" || len(h.Critical()) > 0 {
		// Only the fleet's keys verify: a key or key URL the token
		// carries itself is never used, and no extension is understood.
		return nil, fail(CodeInvalidCredential, nil)
	}
	key, err := v.keys.key(ctx, h.KeyID())
	switch {
	case errors.Is(err, errKeysUnavailable):
		return nil, fail(CodeKeysUnavailable, nil)
	case err != nil:
		return nil, fail(CodeKeysUnavailable, nil)
	case key == nil:
		return nil, fail(CodeInvalidCredential, nil)
	case key.KeyType() != kty || key.Algorithm().String() != "" && key.Algorithm().String() != alg:
		return nil, fail(CodeInvalidCredential, nil)
	}
	payload, err := jws.Verify([]byte(raw), jws.WithKey(jwa.SignatureAlgorithm(alg), publicOf(key)))
	if err != nil {
		return nil, fail(CodeInvalidCredential, nil)
	}
	return v.check(payload, raw)
}

func publicOf(k jwk.Key) jwk.Key {
	if pk, err := k.PublicKey(); err == nil {
		return pk
	}
	return k
}

// check reads the verified claims and holds them to the configuration
// and the clock.
func (v *verifier) check(payload []byte, raw string) (*Credential, error) {
	var c claims
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&c); err != nil || c.Expires == nil || c.JTI == "" || c.Subject == "" {
		return nil, fail(CodeInvalidCredential, nil)
	}
	cred := &Credential{Issuer: c.Issuer, Subject: c.Subject, Scope: strings.Fields(c.Scope), Tenant: c.Tenant,
		TaskID: c.TaskID, SessionID: c.SessionID, JTI: c.JTI, Expires: time.Unix(*c.Expires, 0), Raw: raw}
	if c.IssuedAt != nil {
		cred.IssuedAt = time.Unix(*c.IssuedAt, 0)
	}
	if c.NotBefore != nil {
		cred.NotBefore = time.Unix(*c.NotBefore, 0)
	}
	chain, ok := chainOf(c.Act)
	if !ok {
		return nil, fail(CodeInvalidCredential, nil)
	}
	cred.Chain = chain
	// The issuer is pinned: a token another issuer signed with a key the
	// fleet's JWKS also lists is still not the fleet's.
	if c.Issuer != v.cfg.Issuer {
		return nil, fail(CodeInvalidCredential, nil)
	}
	aud, ok := audienceOf(c.Audience)
	cred.Audience = aud
	if !ok || aud != v.cfg.Audience {
		return nil, fail(CodeWrongAudience, cred)
	}
	now := v.now()
	switch {
	case now.After(cred.Expires.Add(v.cfg.Leeway)):
		return nil, fail(CodeCredentialExpired, cred)
	case !cred.NotBefore.IsZero() && now.Add(v.cfg.Leeway).Before(cred.NotBefore):
		return nil, fail(CodeCredentialNotYetValid, cred)
	case v.cfg.Tenant != "" && cred.Tenant != v.cfg.Tenant:
		return nil, fail(CodeWrongTenant, cred)
	}
	return cred, nil
}

// audienceOf reads aud: one string, or an array of exactly one (RFC 7519
// allows both; a credential is for one backend).
func audienceOf(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil && len(list) == 1 {
		return list[0], list[0] != ""
	}
	return "", false
}

// chainOf unnests act claims into a chain, earliest actor first.
func chainOf(act *actClaim) ([]Actor, bool) {
	var out []Actor
	for a := act; a != nil; a = a.Act {
		if len(out) == maxActDepth || a.Subject == "" {
			return nil, false
		}
		out = append(out, Actor{Subject: a.Subject, Issuer: a.Issuer})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, true
}

// bearer is the token of an Authorization header's value: the scheme
// matched in any letter case (RFC 9110 §11.1), one space, then a compact
// JWS (base64url characters and dots alone).
func bearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", false
		}
	}
	return tok, true
}
