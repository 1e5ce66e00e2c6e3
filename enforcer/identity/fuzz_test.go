package identity_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// fuzzKey is fixed so the committed seed corpus can hold tokens that
// really verify, and the fuzzer mutates from there.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// newFuzzVerifier trusts the fixed fuzz key only.
func newFuzzVerifier(f testing.TB) *identity.Verifier {
	f.Helper()
	s := signer{kid: "fuzz-1", priv: fuzzKey, pub: fuzzKey.Public()}
	p := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(p, jwksJSON(f, s), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := identity.New(context.Background(),
		identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: issuer, Audience: audience, JWKSFile: p, Algorithms: []string{"EdDSA", "RS256"}}},
		identity.WithClock(newClock().Now))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	return v
}

// FuzzVerifyToken feeds arbitrary strings to VerifyToken: it must never
// panic, every refusal must carry one of the package's codes, and a token
// may only be accepted if its signature verifies with the test key.
func FuzzVerifyToken(f *testing.F) {
	v := newFuzzVerifier(f)
	s := signer{kid: "fuzz-1", priv: fuzzKey}
	f.Add(sign(f, jwa.EdDSA, s, claims(nil), nil))
	f.Add(sign(f, jwa.EdDSA, s, claims(func(m map[string]any) {
		m["act"] = map[string]any{"sub": "agent:b", "act": map[string]any{"sub": "agent:a"}}
		m["may_act"] = map[string]any{"sub": "agent:b"}
		m["sub"] = "spiffe://acme.example/agent"
	}), nil))
	f.Add("e30.e30.")
	f.Add("a.b.c.d.e")
	f.Add(enc([]byte(`{"alg":"none","kid":"fuzz-1"}`)) + "." + enc([]byte(`{"iss":"`+issuer+`"}`)) + ".")
	f.Add(enc([]byte(`{"alg":"EdDSA","kid":"fuzz-1","jku":"https://x"}`)) + ".e30.AA")

	codes := identity.Codes()
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.VerifyToken(context.Background(), token)
		if err != nil {
			var e *identity.Error
			if !errors.As(err, &e) || !slices.Contains(codes, e.Code) || e.Code == identity.TokenInvalid {
				t.Fatalf("refusal without a precise code: %v", err)
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts", len(parts))
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !ed25519.Verify(fuzzKey.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("accepted a token the test key did not sign: %q", token)
		}
		var h map[string]any
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if json.Unmarshal(hb, &h) != nil || h["alg"] != "EdDSA" {
			t.Fatalf("accepted header %s", hb)
		}
		if id.Subject == "" || id.Issuer != issuer {
			t.Fatalf("accepted identity %+v", id)
		}
	})
}

// TestFuzzCorpusValid checks the committed "valid*" seeds still verify, so
// the fuzzer starts from tokens that reach the acceptance path.
func TestFuzzCorpusValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzVerifyToken", "valid*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid seeds: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, quoted, _ := strings.Cut(strings.TrimSpace(string(raw)), "string(")
			tok, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := newFuzzVerifier(t).VerifyToken(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}
