package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/rampart-io/rampart/schema/event"
)

// MaxTokenBytes bounds a token Verify reads: a minted one is well under
// 2 KiB even with a deep act chain.
const MaxTokenBytes = 8 << 10

// nbfLeeway is how far in the future an nbf may be: instances of one
// fleet share the key but not quite the clock.
const nbfLeeway = 30 * time.Second

// Errors of Verify. ErrNotIssued covers every token this fleet did not
// sign as it signs: malformed, another issuer, another algorithm (none,
// HS256), an unknown or removed key, a bad signature. Introspection
// answers all of them alike, inactive, and says which only in the record.
var (
	ErrNotIssued = errors.New("credential: not a token this issuer minted")
	ErrExpired   = errors.New("credential: the token has expired")
	ErrNotYet    = errors.New("credential: the token is not yet valid")
)

// Verify checks that raw is a token this fleet minted, signed by one of
// the published keys (current, next or retiring) with that key's own
// algorithm, and live at the minter's clock. It returns the claims with
// ErrExpired or ErrNotYet too, so that a caller may still name what it
// was; with ErrNotIssued the claims are nil.
func (m *Minter) Verify(raw string) (*Claims, error) {
	c, err := m.keys.verifyToken(raw, m.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	now := m.now()
	switch {
	case !now.Before(time.Unix(c.Expires, 0)):
		return c, ErrExpired
	case now.Add(nbfLeeway).Before(time.Unix(c.NotBefore, 0)):
		return c, ErrNotYet
	}
	return c, nil
}

// IsIssuer reports whether raw's unverified iss is this fleet's: a token
// that claims to be a Rampart credential, whether or not it verifies.
func (m *Minter) IsIssuer(raw string) bool {
	_, payload, ok := strings.Cut(raw, ".")
	if !ok {
		return false
	}
	payload, _, _ = strings.Cut(payload, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	return json.Unmarshal(b, &c) == nil && c.Issuer == m.cfg.Issuer
}

// header is the whole protected header a minted token has; any other
// member (jku, jwk, x5u, crit, b64 ...) means it is not one.
type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

func notIssued(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrNotIssued, fmt.Sprintf(format, a...))
}

// verifyToken checks raw's form, header, key and signature, then reads its
// claims strictly and checks the issuer.
func (ks *KeySet) verifyToken(raw, issuer string) (*Claims, error) {
	if len(raw) > MaxTokenBytes {
		return nil, notIssued("%d bytes, over %d", len(raw), MaxTokenBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, notIssued("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return nil, notIssued("header: %v", err)
	}
	var h header
	if err := strictJSON(hb, &h); err != nil {
		return nil, notIssued("header: %v", err)
	}
	key, ok := ks.verify[h.Kid]
	switch {
	case h.Typ != TokenType:
		return nil, notIssued("typ %q", h.Typ)
	case !ok:
		return nil, notIssued("kid %q is not a published key", h.Kid)
	case h.Alg != key.alg.String():
		// The key decides the algorithm, never the token: none, HS256
		// with the public key as secret, or another curve all stop here.
		return nil, notIssued("alg %q, key %s is %s", h.Alg, h.Kid, key.alg)
	}
	payload, err := jws.Verify([]byte(raw), jws.WithKey(key.alg, key.key))
	if err != nil {
		return nil, notIssued("signature: %v", err)
	}
	var c Claims
	if err := strictJSON(payload, &c); err != nil {
		return nil, notIssued("claims: %v", err)
	}
	if c.Issuer != issuer || c.JTI == "" || c.Subject == "" || c.Expires == 0 {
		return nil, notIssued("iss %q, jti %q, sub %q, exp %d", c.Issuer, c.JTI, c.Subject, c.Expires)
	}
	return &c, nil
}

// strictJSON decodes one JSON object of known members only into v.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// Chain is the delegation chain of c's act claims, earliest actor first,
// as event.Identity holds it.
func (c *Claims) Chain() []event.Actor {
	var chain []event.Actor
	for a := c.Act; a != nil; a = a.Act {
		chain = append(chain, event.Actor{Subject: a.Subject, Issuer: a.Issuer})
	}
	slices.Reverse(chain)
	return chain
}
