package identity

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens, keyed by the SHA-256 of the token,
// so an agent repeating its bearer token on every call pays for one
// signature check, not one per call. Only successes are cached: failures
// would let a client fill the cache with junk. Entries end at the token's
// exp or after the TTL, whichever is first, and all end when a JWKS
// changes (a removed key must stop vouching for its tokens).
type tokenCache struct {
	max int
	ttl time.Duration

	mu  sync.Mutex
	gen uint64 // bumped by purge; a put from before the purge is dropped
	m   map[[sha256.Size]byte]*list.Element
	lru list.List // front: most recently used
}

type cacheEntry struct {
	key   [sha256.Size]byte
	id    Identity
	until time.Time
}

func newTokenCache(max int, ttl time.Duration) *tokenCache {
	return &tokenCache{max: max, ttl: ttl, m: make(map[[sha256.Size]byte]*list.Element)}
}

// get returns a copy of the cached identity of key, if it is still valid
// at now, and the generation to pass to put after a miss.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Identity, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return Identity{}, false, c.gen
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.until) {
		c.lru.Remove(el)
		delete(c.m, key)
		return Identity{}, false, c.gen
	}
	c.lru.MoveToFront(el)
	return e.id, true, c.gen
}

// put caches id until min(exp, now+ttl), evicting the least recently used
// entry when full. It does nothing if the cache was purged since gen.
func (c *tokenCache) put(key [sha256.Size]byte, id Identity, exp, now time.Time, gen uint64) {
	until := now.Add(c.ttl)
	if exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.m[key]; ok {
		e := el.Value.(*cacheEntry)
		e.id, e.until = id, until
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.m, oldest.Value.(*cacheEntry).key)
	}
	c.m[key] = c.lru.PushFront(&cacheEntry{key: key, id: id, until: until})
}

// purge empties the cache.
func (c *tokenCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
	c.lru.Init()
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
