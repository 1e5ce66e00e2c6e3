package credential_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/rampart-io/rampart/enforcer/credential"
)

// forge signs claims and header members of the test's choosing with alg
// and key, as an attacker holding (or guessing) a key would.
func forge(t *testing.T, claims map[string]any, hdr map[string]any, alg jwa.SignatureAlgorithm, key any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	for k, v := range hdr {
		_ = h.Set(k, v)
	}
	raw, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// unsigned is an alg none token: header and payload, empty signature.
func unsigned(hdr, claims map[string]any) string {
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// Only a token this fleet signed, as it signs, verifies: every other
// shape is ErrNotIssued, including the classic confusions (alg none,
// HS256 keyed with the public key, a key the header brings along).
func TestVerifyRefusesWhatWasNotMinted(t *testing.T) {
	c := &clock{time.Now().Truncate(time.Second)}
	keyFile := edKey(t)
	m := newMinter(t, credential.Config{KeyFile: keyFile}, c)
	r := baseRequest()
	good, err := m.Mint(&r)
	if err != nil {
		t.Fatal(err)
	}
	if cl, err := m.Verify(good.Raw); err != nil || cl.JTI != good.JTI || cl.Tenant != "acme" || cl.Audience != "https://crm" {
		t.Fatalf("a minted token: %v %+v", err, cl)
	}
	kid := m.Keys().KeyID()
	claims := map[string]any{"iss": "https://rampart.test", "sub": "user:mallory", "aud": "https://crm", "tenant": "acme",
		"jti": "forged", "iat": c.t.Unix(), "nbf": c.t.Unix(), "exp": c.t.Add(time.Minute).Unix()}
	pubJWKS, _ := jwk.Parse(m.Keys().JWKS())
	pubKey, _ := pubJWKS.Key(0)
	var pubRaw ed25519.PublicKey
	_ = pubKey.Raw(&pubRaw)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	otherJWK, _ := jwk.FromRaw(otherPriv.Public())
	parts := strings.Split(good.Raw, ".")
	fleet := readPEM(t, keyFile) // the fleet's own key: only the token's shape is wrong
	without := func(name string) map[string]any {
		out := maps.Clone(claims)
		delete(out, name)
		return out
	}
	if _, err := m.Verify(forge(t, claims, map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, fleet)); err != nil {
		t.Fatalf("the control, a well-formed token of the fleet key: %v", err)
	}
	for name, raw := range map[string]string{
		"alg none":                      unsigned(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, claims),
		"HS256 keyed by the public key": forge(t, claims, map[string]any{"typ": "at+jwt", "kid": kid}, jwa.HS256, []byte(pubRaw)),
		"another key, same kid":         forge(t, claims, map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, otherPriv),
		"unknown kid":                   forge(t, claims, map[string]any{"typ": "at+jwt", "kid": "nope"}, jwa.EdDSA, otherPriv),
		"jwk in the header":             forge(t, claims, map[string]any{"typ": "at+jwt", "kid": kid, "jwk": otherJWK}, jwa.EdDSA, otherPriv),
		"no typ, fleet key":             forge(t, claims, map[string]any{"kid": kid}, jwa.EdDSA, fleet),
		"id token typ, fleet key":       forge(t, claims, map[string]any{"typ": "JWT", "kid": kid}, jwa.EdDSA, fleet),
		"jku header, fleet key":         forge(t, claims, map[string]any{"typ": "at+jwt", "kid": kid, "jku": "https://evil/jwks"}, jwa.EdDSA, fleet),
		"other iss, fleet key":          forge(t, mergeClaims(claims, "iss", "https://idp.test"), map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, fleet),
		"no jti, fleet key":             forge(t, without("jti"), map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, fleet),
		"no exp, fleet key":             forge(t, without("exp"), map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, fleet),
		"unknown claim, fleet key":      forge(t, mergeClaims(claims, "admin", true), map[string]any{"typ": "at+jwt", "kid": kid}, jwa.EdDSA, fleet),
		"payload swapped":               parts[0] + "." + base64.RawURLEncoding.EncodeToString(mustJSON(claims)) + "." + parts[2],
		"signature dropped":             parts[0] + "." + parts[1] + ".",
		"JSON serialization":            `{"payload":"` + parts[1] + `","signatures":[]}`,
		"garbage":                       "not.a.token",
		"empty":                         "",
		"oversized":                     strings.Repeat("a", credential.MaxTokenBytes+1),
	} {
		t.Run(name, func(t *testing.T) {
			if cl, err := m.Verify(raw); !errors.Is(err, credential.ErrNotIssued) || cl != nil {
				t.Fatalf("verified as minted: %v %+v", err, cl)
			}
		})
	}
	// Same key, another issuer's configuration: not this fleet's.
	other := newMinter(t, credential.Config{Issuer: "https://other.test", KeyFile: keyFile}, c)
	if _, err := other.Verify(good.Raw); !errors.Is(err, credential.ErrNotIssued) {
		t.Fatalf("another issuer's token: %v", err)
	}
	c.t = c.t.Add(r.TTL)
	if cl, err := m.Verify(good.Raw); !errors.Is(err, credential.ErrExpired) || cl == nil || cl.JTI != good.JTI {
		t.Fatalf("at exp: %v %+v, want ErrExpired with the claims", err, cl)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func mergeClaims(c map[string]any, k string, v any) map[string]any {
	out := maps.Clone(c)
	out[k] = v
	return out
}

func readPEM(t *testing.T, file string) crypto.Signer {
	t.Helper()
	b, _ := os.ReadFile(file)
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// The rotation procedure: next -> current, current -> retiring (still
// published, still verifying), then removed. A token signed by the
// retiring key verifies via the served JWKS and at introspection; once
// the key is removed it verifies by neither.
func TestRotationRetiringKeyVerifiesRemovedKeyDoesNot(t *testing.T) {
	c := &clock{time.Now().Truncate(time.Second)}
	old, next := edKey(t), edKey(t)
	r := baseRequest()
	// Before: old signs, next is published.
	before := newMinter(t, credential.Config{KeyFile: old, NextKeyFile: next}, c)
	tok, err := before.Mint(&r)
	if err != nil {
		t.Fatal(err)
	}
	// Promoted: next signs, old is retiring.
	during := newMinter(t, credential.Config{KeyFile: next, RetiringKeyFiles: []string{old}}, c)
	set, err := jwk.Parse(during.Keys().JWKS())
	if err != nil || set.Len() != 2 {
		t.Fatalf("JWKS during the rotation: %d keys, %v", set.Len(), err)
	}
	if _, err := jwt.ParseString(tok.Raw, jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(c.now))); err != nil {
		t.Fatalf("a token of the retiring key does not verify via the JWKS: %v", err)
	}
	if _, err := during.Verify(tok.Raw); err != nil {
		t.Fatalf("a token of the retiring key does not verify at introspection: %v", err)
	}
	fresh, _ := during.Mint(&r)
	if fresh.KeyID == tok.KeyID || fresh.KeyID != during.Keys().KeyID() {
		t.Fatal("the promoted key does not sign")
	}
	// After: old removed.
	after := newMinter(t, credential.Config{KeyFile: next}, c)
	set, _ = jwk.Parse(after.Keys().JWKS())
	if _, err := jwt.ParseString(tok.Raw, jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(c.now))); err == nil {
		t.Fatal("a token of a removed key verified via the JWKS")
	}
	if _, err := after.Verify(tok.Raw); !errors.Is(err, credential.ErrNotIssued) {
		t.Fatalf("a token of a removed key at introspection: %v", err)
	}
	if _, err := after.Verify(fresh.Raw); err != nil {
		t.Fatalf("the current key's token: %v", err)
	}
}

func TestRetiringKeyConfigRefusals(t *testing.T) {
	cur, next := edKey(t), edKey(t)
	for name, cfg := range map[string]credential.Config{
		"signing key retiring": {Issuer: "https://r", KeyFile: cur, RetiringKeyFiles: []string{cur}},
		"next key retiring":    {Issuer: "https://r", KeyFile: cur, NextKeyFile: next, RetiringKeyFiles: []string{next}},
		"retiring twice":       {Issuer: "https://r", KeyFile: cur, RetiringKeyFiles: []string{next, next}},
		"missing retiring":     {Issuer: "https://r", KeyFile: cur, RetiringKeyFiles: []string{"/nonexistent"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := credential.New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// publicMembers are all a published key may hold: RFC 7517/8037/7518
// public parameters and the metadata Rampart sets.
var publicMembers = []string{"kty", "crv", "x", "y", "kid", "alg", "use"}

// FuzzJWKSPublishesNoPrivatePart: for any keys (Ed25519 seeds, P-256
// scalars), current, next and retiring alike, the marshalled JWKS holds
// public members only and never the private bytes in any encoding.
func FuzzJWKSPublishesNoPrivatePart(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 32), []byte{1})
	f.Add([]byte(strings.Repeat("k", 32)), []byte(strings.Repeat("\x7f", 32)), []byte{0xff})
	f.Fuzz(func(t *testing.T, edSeed, ecScalar, order []byte) {
		if len(edSeed) != ed25519.SeedSize || len(ecScalar) != 32 {
			return
		}
		ed := ed25519.NewKeyFromSeed(edSeed)
		ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), ecScalar)
		if err != nil {
			return // zero or over the order
		}
		var signer, other crypto.Signer = ed, ec
		if len(order) > 0 && order[0]&1 == 1 {
			signer, other = ec, ed
		}
		ks, err := credential.NewKeySet(signer, other)
		if err != nil {
			t.Fatal(err)
		}
		doc := ks.JWKS()
		var set struct{ Keys []map[string]any }
		if err := json.Unmarshal(doc, &set); err != nil || len(set.Keys) != 2 {
			t.Fatalf("JWKS %s: %v", doc, err)
		}
		for _, k := range set.Keys {
			for name := range k {
				if !slices.Contains(publicMembers, name) {
					t.Fatalf("published key has member %q: %v", name, k)
				}
			}
		}
		ecD, _ := ec.Bytes()
		for _, secret := range [][]byte{edSeed, ed, ecD} {
			for _, enc := range []string{base64.RawURLEncoding.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)} {
				if strings.Contains(string(doc), enc) {
					t.Fatalf("the JWKS holds private bytes: %s", doc)
				}
			}
		}
	})
}
