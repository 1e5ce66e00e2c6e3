package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/testkit/poll"
)

// urlIssuer is a Verifier whose single issuer's keys come from srv.
func urlIssuer(t *testing.T, srv *jwksServer, clk *clock, edit func(c *identity.Config)) *identity.Verifier {
	t.Helper()
	cfg := identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: issuer, Audience: audience, JWKSURL: srv.URL}}
	if edit != nil {
		edit(&cfg)
	}
	v, err := identity.New(context.Background(), cfg, identity.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestJWKSRotationOnUnknownKID(t *testing.T) {
	oldKey, newKey := edSigner(t, "2025-01"), edSigner(t, "2025-02")
	srv := newJWKSServer(t, jwksJSON(t, oldKey))
	clk := newClock()
	v := urlIssuer(t, srv, clk, nil)
	ctx := context.Background()

	verify := func(s signer) error {
		_, err := v.VerifyToken(ctx, sign(t, jwa.EdDSA, s, claims(nil), nil))
		return err
	}
	wantFetches := func(n int64) {
		t.Helper()
		if got := srv.fetches.Load(); got != n {
			t.Fatalf("JWKS fetched %d times, want %d", got, n)
		}
	}
	oldToken := sign(t, jwa.EdDSA, oldKey, claims(nil), nil)
	if _, err := v.VerifyToken(ctx, oldToken); err != nil {
		t.Fatal(err)
	}
	wantFetches(1)

	// The IdP rotates. Right after start the refetch budget is spent, so
	// the new kid is unknown until the interval has passed.
	srv.set(jwksJSON(t, newKey))
	checkCode(t, verify(newKey), identity.TokenUnknownKey)
	wantFetches(1)
	clk.Advance(identity.DefaultJWKSRefetchInterval)
	if err := verify(newKey); err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	wantFetches(2)

	// The old key left the set: its token, though verified and cached
	// before, is refused now, and asking again does not refetch.
	if identity.Cached(v, oldToken) {
		t.Error("the JWKS changed but the old key's token is still cached")
	}
	_, err := v.VerifyToken(ctx, oldToken)
	checkCode(t, err, identity.TokenUnknownKey)
	wantFetches(2)

	// A flood of forged kids, concurrently: one fetch per interval.
	clk.Advance(identity.DefaultJWKSRefetchInterval)
	forged := make([]string, 64)
	for i := range forged {
		forged[i] = sign(t, jwa.EdDSA, signer{kid: fmt.Sprintf("forged-%d", i), priv: newKey.priv}, claims(nil), nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(forged))
	for i, tok := range forged {
		wg.Go(func() { _, errs[i] = v.VerifyToken(ctx, tok) })
	}
	wg.Wait()
	for _, err := range errs {
		checkCode(t, err, identity.TokenUnknownKey)
	}
	wantFetches(3)
	for _, tok := range forged {
		_, err := v.VerifyToken(ctx, tok)
		checkCode(t, err, identity.TokenUnknownKey)
	}
	wantFetches(3)
	clk.Advance(identity.DefaultJWKSRefetchInterval - time.Second)
	_, err = v.VerifyToken(ctx, forged[0])
	checkCode(t, err, identity.TokenUnknownKey)
	wantFetches(3)
	clk.Advance(time.Second)
	_, err = v.VerifyToken(ctx, forged[0])
	checkCode(t, err, identity.TokenUnknownKey)
	wantFetches(4)

	// An IdP outage keeps the last good keys.
	srv.failing.Store(true)
	clk.Advance(identity.DefaultJWKSRefetchInterval)
	_, err = v.VerifyToken(ctx, forged[1])
	checkCode(t, err, identity.TokenUnknownKey)
	wantFetches(5)
	if err := verify(newKey); err != nil {
		t.Fatalf("after a failed fetch: %v", err)
	}
}

func TestJWKSScheduledRefresh(t *testing.T) {
	oldKey, newKey := rsaSigner(t, "old"), rsaSigner(t, "new")
	srv := newJWKSServer(t, jwksJSON(t, oldKey))
	// The fake clock stands still, so no on-demand refetch is ever due:
	// only the scheduled refresh can bring in the new key.
	clk := newClock()
	v := urlIssuer(t, srv, clk, func(c *identity.Config) { c.JWKSRefreshInterval = time.Second })
	srv.set(jwksJSON(t, oldKey, newKey))
	tok := sign(t, jwa.RS256, newKey, claims(nil), nil)

	poll.Until(t, 10*time.Second, func() error {
		_, err := v.VerifyToken(context.Background(), tok)
		if err != nil && identity.CodeOf(err) != identity.TokenUnknownKey {
			t.Fatalf("while the new key is awaited: %v", err)
		}
		if err != nil {
			return fmt.Errorf("new key never picked up: %v (fetches %d)", err, srv.fetches.Load())
		}
		return nil
	})
	if srv.fetches.Load() < 2 {
		t.Errorf("fetches = %d, want a scheduled one", srv.fetches.Load())
	}
}

func TestJWKSURLMustAnswerAtStart(t *testing.T) {
	srv := newJWKSServer(t, []byte("{}"))
	tests := []struct {
		name string
		edit func()
	}{
		{"server error", func() { srv.failing.Store(true) }},
		{"not a JWKS", func() { srv.set([]byte("<html>")) }},
		{"no usable key", func() { srv.set([]byte(`{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.failing.Store(false)
			tt.edit()
			v, err := identity.New(context.Background(), identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: issuer, Audience: audience, JWKSURL: srv.URL}})
			if err == nil {
				v.Close()
				t.Fatal("New succeeded")
			}
			t.Log(err)
		})
	}
}

func TestJWKSFileKeys(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := signer{kid: "weak", priv: k, pub: &k.PublicKey}
	good := edSigner(t, "good")
	const hmac = `{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}`
	tests := []struct {
		name    string
		jwks    string
		wantErr bool
	}{
		{name: "symmetric key skipped", jwks: jwksPlus(t, []string{hmac}, good)},
		{name: "weak RSA key skipped", jwks: jwksPlus(t, nil, weak, good)},
		{name: "encryption key skipped", jwks: jwksPlus(t, []string{`{"kty":"OKP","crv":"X25519","kid":"x","use":"enc","x":"` + enc(make([]byte, 32)) + `"}`}, good)},
		{name: "duplicate kid", jwks: jwksPlus(t, nil, good, signer{kid: "good", pub: edSigner(t, "x").pub}), wantErr: true},
		{name: "only unusable keys", jwks: jwksPlus(t, []string{hmac}), wantErr: true},
		{name: "not JSON", jwks: `keys`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(p, []byte(tt.jwks), 0o600); err != nil {
				t.Fatal(err)
			}
			v, err := identity.New(context.Background(), identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: issuer, Audience: audience, JWKSFile: p, Algorithms: []string{"EdDSA", "RS256"}}},
				identity.WithClock(newClock().Now))
			if tt.wantErr {
				if err == nil {
					v.Close()
					t.Fatal("New succeeded")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if _, err := v.VerifyToken(context.Background(), sign(t, jwa.EdDSA, good, claims(nil), nil)); err != nil {
				t.Fatalf("good key: %v", err)
			}
			if tt.name == "weak RSA key skipped" {
				_, err := v.VerifyToken(context.Background(), sign(t, jwa.RS256, weak, claims(nil), nil))
				checkCode(t, err, identity.TokenUnknownKey)
			}
		})
	}
}

// jwksPlus is the JWKS of signers with the raw JSON keys extra added.
func jwksPlus(t *testing.T, extra []string, signers ...signer) string {
	t.Helper()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if len(signers) > 0 {
		if err := json.Unmarshal(jwksJSON(t, signers...), &set); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		set.Keys = append(set.Keys, json.RawMessage(e))
	}
	return mustJSON(t, set)
}
