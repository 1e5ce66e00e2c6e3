package credential

import (
	"container/list"
	"sync"
	"time"
)

// Cache keeps minted tokens for reuse, per tenant and bounded: a tenant
// past MaxPerTenant evicts its own least recently used, and past
// MaxTenants the least recently active tenant's tokens go. A token is
// found only by the exact request it was minted for — principal, full
// delegation chain, task, session, audience, scope and ttl — so it is
// never handed to anyone or anything else.
type Cache struct {
	cfg     CacheConfig
	mu      sync.Mutex
	tenants map[string]*tenantTokens
	order   *list.List // of *tenantTokens, most recently used first
}

type tenantTokens struct {
	name  string
	at    *list.Element // in Cache.order
	items map[string]*list.Element
	lru   *list.List // of *cached, most recently used first
}

type cached struct {
	key   string
	token Token
}

// NewCache returns an empty cache bounded by cfg (defaults filled in).
func NewCache(cfg CacheConfig) *Cache {
	c := Config{Cache: cfg}
	c.SetDefaults()
	return &Cache{cfg: c.Cache, tenants: map[string]*tenantTokens{}, order: list.New()}
}

// Get returns the token kept for r when it is still fresh at now: its
// remaining life is more than a quarter of its lifetime, so a backend
// never receives a token about to expire.
func (c *Cache) Get(r *Request, now time.Time) (Token, bool) {
	key := r.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[r.Tenant]
	if t == nil {
		return Token{}, false
	}
	el, ok := t.items[key]
	if !ok {
		return Token{}, false
	}
	tok := el.Value.(*cached).token
	if !tok.fresh(now) {
		t.lru.Remove(el)
		delete(t.items, key)
		return Token{}, false
	}
	t.lru.MoveToFront(el)
	c.order.MoveToFront(t.at)
	return tok, true
}

// Put keeps tok as the token of r.
func (c *Cache) Put(r *Request, tok Token) {
	key := r.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[r.Tenant]
	if t == nil {
		if len(c.tenants) >= c.cfg.MaxTenants {
			oldest := c.order.Back().Value.(*tenantTokens)
			c.order.Remove(oldest.at)
			delete(c.tenants, oldest.name)
		}
		t = &tenantTokens{name: r.Tenant, items: map[string]*list.Element{}, lru: list.New()}
		t.at = c.order.PushFront(t)
		c.tenants[r.Tenant] = t
	}
	c.order.MoveToFront(t.at)
	if el, ok := t.items[key]; ok {
		el.Value.(*cached).token = tok
		t.lru.MoveToFront(el)
		return
	}
	if t.lru.Len() >= c.cfg.MaxPerTenant {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.items, old.Value.(*cached).key)
	}
	t.items[key] = t.lru.PushFront(&cached{key: key, token: tok})
}

// Len is the number of tokens kept for tenant.
func (c *Cache) Len(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tenants[tenant]; t != nil {
		return t.lru.Len()
	}
	return 0
}
