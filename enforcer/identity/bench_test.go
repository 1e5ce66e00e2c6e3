package identity_test

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// benchTokens are a typical agent token (tenant, session, one actor) per
// algorithm, with a verifier that trusts their keys.
func benchTokens(b *testing.B) (*identity.Verifier, map[string]string) {
	b.Helper()
	rs, ed := rsaSigner(b, "rsa-1"), edSigner(b, "ed-1")
	p := writeJWKS(b, rs, ed)
	v, err := identity.New(context.Background(), identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: issuer, Audience: audience, JWKSFile: p}},
		identity.WithClock(newClock().Now))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	c := claims(func(m map[string]any) { m["act"] = map[string]any{"sub": "agent:planner"} })
	return v, map[string]string{
		"EdDSA": sign(b, jwa.EdDSA, ed, c, nil),
		"RS256": sign(b, jwa.RS256, rs, c, nil),
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	v, toks := benchTokens(b)
	for _, alg := range []string{"EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			tok := toks[alg]
			if _, err := v.VerifyToken(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.VerifyToken(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyUncached(b *testing.B) {
	v, toks := benchTokens(b)
	for _, alg := range []string{"EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			tok := toks[alg]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := identity.VerifyUncached(context.Background(), v, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRejectForged is the cost of refusing a token whose signature
// is wrong: what a flood of forgeries costs.
func BenchmarkRejectForged(b *testing.B) {
	v, _ := benchTokens(b)
	forged := sign(b, jwa.EdDSA, edSigner(b, "ed-1"), claims(nil), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyToken(context.Background(), forged); identity.CodeOf(err) != identity.TokenSignature {
			b.Fatal(err)
		}
	}
}
