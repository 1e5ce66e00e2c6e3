// Package binding ties the identifiers a client chooses — an MCP session id
// in Mcp-Session-Id, a task id in a header — to the principal that holds
// them, so that no other principal can join a session or task by sending
// its id. The backend's namespace of ids is one for every tenant behind
// the enforcer, so ids are bound globally; what a tenant may hold is
// bounded per tenant, and a tenant that floods the table evicts only its
// own bindings.
//
// A binding remembers where the id came from: issued by the backend in an
// answer to this principal (Server), or first presented by this principal
// (Client), which says only that nobody else presented it here first.
package binding

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Kind is the namespace of an id: sessions and tasks never collide.
type Kind byte

// Kinds of ids.
const (
	Session Kind = 's'
	Task    Kind = 't'
	// ServerRequest is a request the backend sent a principal's client,
	// by session and JSON-RPC id, until the client answers it (Take).
	ServerRequest Kind = 'r'
)

// Source says where a bound id came from.
type Source string

// Sources of a binding; the token's own claims are not bound (Token is
// for callers that report where an id came from).
const (
	Token  Source = "token"  // a claim of the verified token
	Server Source = "server" // issued by the backend in an answer to the principal
	Client Source = "client" // first presented by the principal
)

// Principal names who holds an id: a tenant's verified subject of one
// issuer. The agents acting for a principal share its sessions.
type Principal struct{ Tenant, Issuer, Subject string }

// Outcome of a Claim.
type Outcome int

// Outcomes.
const (
	Held    Outcome = iota // bound to the claimant, now or before
	Foreign                // bound to another principal
)

// Config bounds a Table. Zero fields take the defaults.
type Config struct {
	// MaxPerPrincipal bounds the bindings one principal holds; past it
	// the principal's least recently used binding goes. Default 1,000.
	MaxPerPrincipal int `yaml:"max_per_principal"`
	// MaxPerTenant bounds the bindings one tenant holds; past it the least
	// recently used binding of the tenant's principal holding the most
	// goes. Default 10,000.
	MaxPerTenant int `yaml:"max_per_tenant"`
	// MaxTotal bounds all bindings; past it the least recently used
	// binding of the largest holder of the largest tenant goes. Default
	// 50,000.
	MaxTotal int `yaml:"max_total"`
	// IdleTimeout ends a binding not used for this long. Default 24h.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// SetDefaults fills the unset fields of c.
func (c *Config) SetDefaults() {
	if c.MaxPerPrincipal == 0 {
		c.MaxPerPrincipal = 1_000
	}
	if c.MaxPerTenant == 0 {
		c.MaxPerTenant = 10_000
	}
	if c.MaxTotal == 0 {
		c.MaxTotal = 50_000
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 24 * time.Hour
	}
}

// Validate reports the first unusable bound.
func (c *Config) Validate() error {
	if c.MaxPerPrincipal < 0 || c.MaxPerTenant < 0 || c.MaxTotal < 0 || c.IdleTimeout < 0 {
		return errors.New("session_bindings: bounds must not be negative")
	}
	return nil
}

// key is the digest of an id in its namespace: a binding's size does not
// grow with the id a client sends.
type key [16]byte

// owner is the digest of a principal.
type owner [16]byte

type binding struct {
	key      key
	source   Source
	lastUsed time.Time
	holder   *holder
}

// holder is one principal's bindings, most recently used at the front.
type holder struct {
	owner  owner
	lru    list.List // of *binding
	tenant *tenantBindings
}

type tenantBindings struct {
	name    string
	holders map[owner]*holder
	n       int // bindings of all its holders
}

// Table is a bounded set of bindings, safe for concurrent use. Whatever
// bound is hit, the binding that goes is the least recently used of the
// largest holder within it, so one who floods the table evicts its own.
type Table struct {
	cfg     Config
	mu      sync.Mutex
	byKey   map[key]*list.Element
	tenants map[string]*tenantBindings
}

// New returns an empty table bounded by cfg.
func New(cfg Config) *Table {
	cfg.SetDefaults()
	return &Table{cfg: cfg, byKey: map[key]*list.Element{}, tenants: map[string]*tenantBindings{}}
}

// Claim binds id to p as presented by p at now, unless it is bound to
// another principal (Foreign). It returns the source of p's binding.
func (t *Table) Claim(k Kind, id string, p Principal, now time.Time) (Outcome, Source) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lookup(k, id, now)
	if b == nil {
		b = t.bind(k, id, p, Client, now)
		return Held, b.source
	}
	if b.holder.owner != ownerOf(p) {
		return Foreign, ""
	}
	t.touch(b, now)
	return Held, b.source
}

// Issue binds id to p as issued to p by the backend. It reports false,
// binding nothing, when id is already bound to another principal: the
// backend handed out an id someone else holds here.
func (t *Table) Issue(k Kind, id string, p Principal, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lookup(k, id, now)
	switch {
	case b == nil:
		t.bind(k, id, p, Server, now)
	case b.holder.owner != ownerOf(p):
		return false
	default:
		b.source = Server
		t.touch(b, now)
	}
	return true
}

// Take ends p's binding of id and reports whether there was one: a
// client's answer to a server request consumes it, so an answer no
// request asked for, or a second one, finds none.
func (t *Table) Take(k Kind, id string, p Principal, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.lookup(k, id, now)
	if b == nil || b.holder.owner != ownerOf(p) {
		return false
	}
	t.remove(t.byKey[b.key])
	return true
}

// Release ends p's binding of id (an MCP session closed with DELETE).
func (t *Table) Release(k Kind, id string, p Principal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.byKey[keyOf(k, id)]; ok && el.Value.(*binding).holder.owner == ownerOf(p) {
		t.remove(el)
	}
}

// Len returns the number of bindings held, and how many of them tenant holds.
func (t *Table) Len(tenant string) (total, ofTenant int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tb := t.tenants[tenant]; tb != nil {
		ofTenant = tb.n
	}
	return len(t.byKey), ofTenant
}

// lookup returns the live binding of id, dropping it when idle too long.
func (t *Table) lookup(k Kind, id string, now time.Time) *binding {
	el, ok := t.byKey[keyOf(k, id)]
	if !ok {
		return nil
	}
	b := el.Value.(*binding)
	if now.Sub(b.lastUsed) >= t.cfg.IdleTimeout {
		t.remove(el)
		return nil
	}
	return b
}

func (t *Table) bind(k Kind, id string, p Principal, src Source, now time.Time) *binding {
	tb := t.tenants[p.Tenant]
	if tb == nil {
		tb = &tenantBindings{name: p.Tenant, holders: map[owner]*holder{}}
		t.tenants[p.Tenant] = tb
	}
	o := ownerOf(p)
	h := tb.holders[o]
	if h == nil {
		h = &holder{owner: o, tenant: tb}
		tb.holders[o] = h
	}
	t.expire(h, now)
	if h.lru.Len() >= t.cfg.MaxPerPrincipal {
		t.remove(h.lru.Back())
	}
	if tb.n >= t.cfg.MaxPerTenant {
		t.remove(largestHolder(tb).lru.Back())
	}
	if len(t.byKey) >= t.cfg.MaxTotal {
		t.remove(largestHolder(t.largestTenant()).lru.Back())
	}
	b := &binding{key: keyOf(k, id), source: src, lastUsed: now, holder: h}
	t.byKey[b.key] = h.lru.PushFront(b)
	tb.n++
	return b
}

func (t *Table) touch(b *binding, now time.Time) {
	b.lastUsed = now
	b.holder.lru.MoveToFront(t.byKey[b.key])
}

// expire drops h's idle bindings, oldest first, so a full holder does not
// evict a live binding while dead ones remain.
func (t *Table) expire(h *holder, now time.Time) {
	for el := h.lru.Back(); el != nil && now.Sub(el.Value.(*binding).lastUsed) >= t.cfg.IdleTimeout; el = h.lru.Back() {
		t.remove(el)
	}
}

// largestTenant and largestHolder scan, which they do only when a bound
// is reached: tenants and their principals are few beside their bindings.
func (t *Table) largestTenant() *tenantBindings {
	var big *tenantBindings
	for _, tb := range t.tenants {
		if big == nil || tb.n > big.n {
			big = tb
		}
	}
	return big
}

func largestHolder(tb *tenantBindings) *holder {
	var big *holder
	for _, h := range tb.holders {
		if big == nil || h.lru.Len() > big.lru.Len() {
			big = h
		}
	}
	return big
}

func (t *Table) remove(el *list.Element) {
	b := el.Value.(*binding)
	h := b.holder
	h.lru.Remove(el)
	delete(t.byKey, b.key)
	h.tenant.n--
	if h.lru.Len() == 0 {
		delete(h.tenant.holders, h.owner)
	}
	if h.tenant.n == 0 {
		delete(t.tenants, h.tenant.name)
	}
}

func keyOf(k Kind, id string) key {
	d := sha256.New()
	d.Write([]byte{byte(k)})
	d.Write([]byte(id))
	var out key
	copy(out[:], d.Sum(nil))
	return out
}

func ownerOf(p Principal) owner {
	d := sha256.New()
	for _, s := range []string{p.Tenant, p.Issuer, p.Subject} {
		d.Write(binary.AppendUvarint(nil, uint64(len(s))))
		d.Write([]byte(s))
	}
	var out owner
	copy(out[:], d.Sum(nil))
	return out
}
