package identity_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/rampart-io/rampart/enforcer/identity"
)

func TestCacheExpiry(t *testing.T) {
	ti := newTestIssuer(t, func(c *identity.Config) { c.CacheTTL = time.Minute })
	ctx := context.Background()
	short := sign(t, jwa.EdDSA, ti.ed, claims(func(m map[string]any) { m["exp"] = t0.Add(10 * time.Second).Unix() }), nil)
	long := sign(t, jwa.EdDSA, ti.ed, claims(nil), nil)

	steps := []struct {
		name       string
		advance    time.Duration
		token      string
		want       identity.Code
		wantCached bool
	}{
		{name: "first use caches", token: short, wantCached: true},
		{name: "reuse before exp", advance: 9 * time.Second, token: short, wantCached: true},
		// Past exp the entry is gone; the full check still accepts within
		// the 30s skew but does not cache a token already past its exp.
		{name: "after exp, within skew", advance: 2 * time.Second, token: short},
		{name: "after exp beyond skew", advance: 30 * time.Second, token: short, want: identity.TokenExpired},
		{name: "long-lived token caches", token: long, wantCached: true},
		{name: "cached within the TTL", advance: 59 * time.Second, token: long, wantCached: true},
		{name: "TTL ends the entry, a fresh check renews it", advance: 2 * time.Second, token: long, wantCached: true},
		{name: "cached until past exp, then rejected", advance: time.Hour, token: long, want: identity.TokenExpired},
	}
	for _, s := range steps {
		ti.clock.Advance(s.advance)
		_, err := ti.v.VerifyToken(ctx, s.token)
		if s.want != "" {
			if err == nil {
				t.Fatalf("%s: accepted, want %s", s.name, s.want)
			}
			checkCode(t, err, s.want)
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := identity.Cached(ti.v, s.token); got != s.wantCached {
			t.Fatalf("%s: cached = %v, want %v", s.name, got, s.wantCached)
		}
	}
}

func TestCacheBoundedLRU(t *testing.T) {
	ti := newTestIssuer(t, func(c *identity.Config) { c.CacheSize = 3 })
	ctx := context.Background()
	toks := make([]string, 5)
	for i := range toks {
		toks[i] = sign(t, jwa.EdDSA, ti.ed, claims(func(m map[string]any) { m["sid"] = fmt.Sprint("s", i) }), nil)
	}
	verify := func(i int) {
		t.Helper()
		if _, err := ti.v.VerifyToken(ctx, toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	verify(0)
	verify(1)
	verify(2)
	verify(0) // 0 is now the most recent; 1 the least
	verify(3) // evicts 1
	verify(4) // evicts 2
	if n := identity.CacheLen(ti.v); n != 3 {
		t.Errorf("cache holds %d tokens, want 3", n)
	}
	for i, want := range []bool{true, false, false, true, true} {
		if got := identity.Cached(ti.v, toks[i]); got != want {
			t.Errorf("token %d cached = %v, want %v", i, got, want)
		}
	}
}

// TestCacheReturnsCopies checks a caller cannot change what the next
// caller of the same token sees.
func TestCacheReturnsCopies(t *testing.T) {
	ti := newTestIssuer(t, nil)
	tok := sign(t, jwa.EdDSA, ti.ed, claims(func(m map[string]any) {
		m["act"] = map[string]any{"sub": "agent:a"}
		m["may_act"] = map[string]any{"sub": "agent:a"}
	}), nil)
	for i := range 3 {
		id, err := ti.v.VerifyToken(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if id.SessionID != "sess-1" || id.Chain[0].Subject != "agent:a" || id.MayAct[0].Subject != "agent:a" {
			t.Fatalf("call %d: identity = %+v", i, id)
		}
		id.SessionID, id.Chain[0].Subject, id.MayAct[0].Subject = "x", "x", "x"
	}
}
