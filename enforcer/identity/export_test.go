package identity

import (
	"context"
	"crypto/sha256"
)

// VerifyUncached verifies token bypassing the cache, for benchmarks.
func VerifyUncached(ctx context.Context, v *Verifier, token string) (*Identity, error) {
	id, _, err := v.verify(ctx, token)
	return id, err
}

// CacheLen is the number of cached tokens.
func CacheLen(v *Verifier) int { return v.cache.len() }

// Cached reports whether token is in the cache and still valid, without
// touching its recency.
func Cached(v *Verifier, token string) bool {
	c := v.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[sha256.Sum256([]byte(token))]
	return ok && v.now().Before(el.Value.(*cacheEntry).until)
}
