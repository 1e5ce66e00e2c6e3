package workload

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Issuer is a demo identity provider: an Ed25519 signing key and its JWKS.
type Issuer struct {
	URL      string
	Audience string
	key      jwk.Key
	public   jwk.Set
}

// NewIssuer makes a fresh signing key.
func NewIssuer(url, audience string) (*Issuer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	_ = key.Set(jwk.KeyIDKey, fmt.Sprintf("demo-%d", time.Now().Unix()))
	_ = key.Set(jwk.AlgorithmKey, jwa.EdDSA)
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return &Issuer{URL: url, Audience: audience, key: key, public: set}, nil
}

// JWKS returns the public key set as JSON.
func (i *Issuer) JWKS() ([]byte, error) { return json.Marshal(i.public) }

// Caller is who a token speaks for: a principal and the agents acting for
// it, earliest first (the last one is making the call).
type Caller struct {
	Tenant    string
	Principal string
	Actors    []string
	Session   string
	Task      string
}

// Token signs a short-lived token for c. Actors become nested RFC 8693
// "act" claims: the outermost is the current actor, prior actors nest inside.
func (i *Issuer) Token(c Caller, ttl time.Duration) (string, error) {
	now := time.Now()
	b := jwt.NewBuilder().Issuer(i.URL).Audience([]string{i.Audience}).Subject(c.Principal).
		IssuedAt(now).NotBefore(now.Add(-time.Second)).Expiration(now.Add(ttl)).
		Claim("tenant", c.Tenant)
	if c.Session != "" {
		b = b.Claim("sid", c.Session)
	}
	if c.Task != "" {
		b = b.Claim("task", c.Task)
	}
	var act map[string]any
	for _, a := range c.Actors {
		next := map[string]any{"sub": a}
		if act != nil {
			next["act"] = act
		}
		act = next
	}
	if act != nil {
		b = b.Claim("act", act)
	}
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, i.key))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}
