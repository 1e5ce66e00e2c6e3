package credential_test

import (
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// BenchmarkMint is the cost of one fresh token (claims, JSON, Ed25519).
func BenchmarkMint(b *testing.B) {
	m := newMinter(b, credential.Config{}, &clock{time.Now()})
	r := baseRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Mint(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCached is the cost of finding a task's token in the cache.
func BenchmarkCached(b *testing.B) {
	m := newMinter(b, credential.Config{}, &clock{time.Now()})
	r := baseRequest()
	tok, _ := m.Mint(&r)
	m.Keep(&r, tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.Cached(&r); !ok {
			b.Fatal("miss")
		}
	}
}
