package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default bounds of a Budgets (see BudgetLimits).
const (
	DefaultMaxBudgetsPerTenant = 10_000
	DefaultMaxBudgets          = 100_000
)

// BudgetLimits bound the counters of a Budgets; a counter is one session
// or task counted against one rule. The zero value means the defaults.
type BudgetLimits struct {
	// MaxPerTenant bounds the counters one tenant holds. Beyond it the
	// tenant's new sessions or tasks are refused with budget_table_full
	// until some of its windows end; other tenants are not affected.
	// Default 10000.
	MaxPerTenant int `yaml:"max_per_tenant"`
	// MaxTotal bounds the counters of all tenants together, and with it
	// the memory budgets hold (about 66 bytes a counter, whatever the
	// length of the session or task id; see BENCHMARKS.md). When it is reached, every
	// tenant's new sessions or tasks are refused with budget_table_full;
	// counters already held keep counting, and none is evicted. Room for
	// max_total / max_per_tenant tenants at their bound. Default 100000.
	MaxTotal int `yaml:"max_total"`
}

// SetDefaults fills the unset fields of l.
func (l *BudgetLimits) SetDefaults() {
	if l.MaxPerTenant == 0 {
		l.MaxPerTenant = DefaultMaxBudgetsPerTenant
	}
	if l.MaxTotal == 0 {
		l.MaxTotal = DefaultMaxBudgets
	}
}

// Validate reports the first unusable limit.
func (l *BudgetLimits) Validate() error {
	switch {
	case l.MaxPerTenant < 0 || l.MaxTotal < 0:
		return errors.New("budgets: max_per_tenant and max_total must not be negative")
	case l.MaxPerTenant > l.MaxTotal:
		return fmt.Errorf("budgets: max_per_tenant (%d) must not exceed max_total (%d)", l.MaxPerTenant, l.MaxTotal)
	}
	return nil
}

// Budgets counts calls against rule budgets, in memory and bounded. One
// Budgets is shared by every bundle a Watcher loads, so counters survive a
// policy reload (they are keyed by tenant, policy id and rule id). Counts
// are per process: N enforcer replicas allow up to N times a budget.
//
// Each tenant's counters are a partition of their own, bounded by
// MaxPerTenant, and all partitions together by MaxTotal. A full partition
// or table refuses new scopes rather than evict live counters, since
// evicting would hand a fresh budget to whoever floods it; the refusal is
// DecisionBudgetTableFull, never a spent budget.
type Budgets struct {
	limits BudgetLimits
	epoch  time.Time    // counters keep offsets from it, on the monotonic clock
	total  atomic.Int64 // counters in all partitions

	refusedTenant, refusedTotal atomic.Int64 // calls refused by a full partition, table

	mu      sync.RWMutex // guards tenants; taken before a partition's mu
	tenants map[string]*partition

	sweeping  sync.Mutex // one sweep of all partitions at a time
	lastSweep time.Time  // of all partitions, under sweeping
}

// partition is one tenant's counters.
type partition struct {
	mu        sync.Mutex
	counters  map[budgetKey]budgetCounter
	lastSweep time.Time
	dropped   bool // removed from Budgets.tenants: look the tenant up again
}

// budgetKey is a digest of the policy id, rule id, scope kind and session
// or task id, so a counter's size does not depend on what the caller sent.
// 16 bytes of SHA-256: two scopes share a counter only by a collision, and
// only within their tenant's partition.
type budgetKey [16]byte

type budgetCounter struct {
	end  time.Duration // the window closes, as an offset from epoch
	used int64
}

// chargeResult is how charging a call went.
type chargeResult int

const (
	charged     chargeResult = iota
	budgetSpent              // the scope's budget is spent in this window
	tenantFull               // a new scope, and its tenant's partition is full
	tableFull                // a new scope, and all partitions together are full
)

// NewBudgets returns an empty Budgets bounded by l (defaults for unset
// fields; a MaxPerTenant above MaxTotal is lowered to it).
func NewBudgets(l BudgetLimits) *Budgets {
	l.SetDefaults()
	l.MaxPerTenant = min(l.MaxPerTenant, l.MaxTotal)
	return &Budgets{limits: l, epoch: time.Now(), tenants: map[string]*partition{}}
}

// Len returns the number of counters held, expired ones not yet swept
// included.
func (b *Budgets) Len() int { return int(b.total.Load()) }

// Usage calls f with the counters each tenant holds; f must not use b.
func (b *Budgets) Usage(f func(tenant string, counters int)) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for t, p := range b.tenants {
		p.mu.Lock()
		n := len(p.counters)
		p.mu.Unlock()
		f(t, n)
	}
}

// Refused returns how many calls a full partition and a full table have
// refused.
func (b *Budgets) Refused() (tenantFull, tableFull int64) {
	return b.refusedTenant.Load(), b.refusedTotal.Load()
}

// budgetKeyOf digests a counter's identity. Each part is length-prefixed,
// so no two tuples digest the same bytes.
func budgetKeyOf(policyID, ruleID string, per BudgetScope, scope string) budgetKey {
	buf := make([]byte, 0, 256) // on the stack for ids of ordinary length
	for _, s := range [...]string{policyID, ruleID, string(per), scope} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	sum := sha256.Sum256(buf)
	return budgetKey(sum[:16])
}

// charge counts one call of tenant against spec under k at now. It
// returns the calls used in the window including this one, and how the
// charge went: a call over budget or refused for room is not counted.
func (b *Budgets) charge(tenant string, k budgetKey, spec *Budget, now time.Time) (int64, chargeResult) {
	used, res, p := b.chargeIn(tenant, k, spec, now)
	if res == tableFull && b.sweep(now) {
		used, res, p = b.chargeIn(tenant, k, spec, now)
	}
	switch res {
	case tenantFull:
		b.refusedTenant.Add(1)
	case tableFull:
		b.refusedTotal.Add(1)
		b.dropEmpty(tenant, p)
	}
	return used, res
}

// chargeIn charges the call in tenant's partition, made if need be, and
// returns that partition.
func (b *Budgets) chargeIn(tenant string, k budgetKey, spec *Budget, now time.Time) (int64, chargeResult, *partition) {
	for {
		p := b.partition(tenant)
		p.mu.Lock()
		if !p.dropped {
			used, res := b.chargeLocked(p, k, spec, now)
			p.mu.Unlock()
			return used, res, p
		}
		p.mu.Unlock()
	}
}

func (b *Budgets) chargeLocked(p *partition, k budgetKey, spec *Budget, now time.Time) (int64, chargeResult) {
	at := now.Sub(b.epoch)
	c, ok := p.counters[k]
	if ok && at >= c.end {
		c = budgetCounter{end: at + spec.Window}
	}
	if !ok {
		if len(p.counters) >= b.limits.MaxPerTenant {
			if now.Sub(p.lastSweep) >= time.Second {
				b.sweepLocked(p, now)
			}
			if len(p.counters) >= b.limits.MaxPerTenant {
				return 0, tenantFull
			}
		}
		if b.total.Add(1) > int64(b.limits.MaxTotal) {
			b.total.Add(-1)
			return 0, tableFull
		}
		c = budgetCounter{end: at + spec.Window}
	}
	if c.used >= spec.Calls {
		return c.used, budgetSpent
	}
	c.used++
	p.counters[k] = c
	return c.used, charged
}

// partition returns tenant's partition, adding an empty one when it has
// none.
func (b *Budgets) partition(tenant string) *partition {
	b.mu.RLock()
	p := b.tenants[tenant]
	b.mu.RUnlock()
	if p != nil {
		return p
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p = b.tenants[tenant]; p == nil {
		p = &partition{counters: map[budgetKey]budgetCounter{}}
		b.tenants[strings.Clone(tenant)] = p // not the request's memory
	}
	return p
}

// dropEmpty removes tenant's partition p when it holds no counter, so a
// tenant that a full table refused leaves nothing behind.
func (b *Budgets) dropEmpty(tenant string, p *partition) {
	p.mu.Lock()
	empty := len(p.counters) == 0
	p.mu.Unlock()
	if !empty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counters) == 0 && b.tenants[tenant] == p {
		p.dropped = true
		delete(b.tenants, tenant)
	}
}

// sweep drops the expired counters of every partition, and the partitions
// left empty, when the table is full. It runs at most once a second, and
// not while another runs, so a full table of live counters does not cost a
// scan per request; it reports whether it ran.
func (b *Budgets) sweep(now time.Time) bool {
	if !b.sweeping.TryLock() {
		return false
	}
	defer b.sweeping.Unlock()
	if now.Sub(b.lastSweep) < time.Second {
		return false
	}
	b.lastSweep = now
	b.mu.Lock()
	defer b.mu.Unlock()
	for t, p := range b.tenants {
		p.mu.Lock()
		b.sweepLocked(p, now)
		if len(p.counters) == 0 {
			p.dropped = true
			delete(b.tenants, t)
		}
		p.mu.Unlock()
	}
	return true
}

// sweepLocked drops p's expired counters.
func (b *Budgets) sweepLocked(p *partition, now time.Time) {
	p.lastSweep = now
	at, n := now.Sub(b.epoch), len(p.counters)
	for k, c := range p.counters {
		if at >= c.end {
			delete(p.counters, k)
		}
	}
	b.total.Add(int64(len(p.counters) - n))
}
