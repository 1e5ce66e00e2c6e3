package policy

import (
	"sync"
	"time"
)

// DefaultMaxBudgets bounds the counters a Budgets holds when NewBudgets is
// given no limit: about 100 bytes each plus the key strings.
const DefaultMaxBudgets = 100_000

// Budgets counts calls against rule budgets, in memory and bounded. One
// Budgets is shared by every bundle a Watcher loads, so counters survive a
// policy reload (they are keyed by tenant, policy id and rule id). Counts
// are per process: N enforcer replicas allow up to N times a budget.
type Budgets struct {
	mu        sync.Mutex
	max       int
	counters  map[budgetKey]*budgetCounter
	lastSweep time.Time
}

type budgetKey struct {
	tenant, policy, rule string
	per                  BudgetScope
	scope                string // the session or task id
}

type budgetCounter struct {
	start  time.Time // the window opened at the first call counted in it
	window time.Duration
	used   int64
}

// NewBudgets returns an empty Budgets holding at most max counters
// (DefaultMaxBudgets when max <= 0).
func NewBudgets(max int) *Budgets {
	if max <= 0 {
		max = DefaultMaxBudgets
	}
	return &Budgets{max: max, counters: make(map[budgetKey]*budgetCounter)}
}

// Len returns the number of live counters.
func (b *Budgets) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.counters)
}

// charge counts one call against spec under k at now. It returns the
// calls used in the window including this one, and false when the call
// is over budget (then it is not counted) or the table is full of live
// counters: a full table refuses new scopes rather than evict live ones,
// since evicting would hand a fresh budget to whoever floods it.
func (b *Budgets) charge(k budgetKey, spec *Budget, now time.Time) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counters[k]
	if c != nil && now.Sub(c.start) >= c.window {
		c.start, c.window, c.used = now, spec.Window, 0
	}
	if c == nil {
		if len(b.counters) >= b.max {
			b.sweepLocked(now)
			if len(b.counters) >= b.max {
				return 0, false
			}
		}
		c = &budgetCounter{start: now, window: spec.Window}
		b.counters[k] = c
	}
	if c.used >= spec.Calls {
		return c.used, false
	}
	c.used++
	return c.used, true
}

// sweepLocked drops expired counters. It runs at most once a second so a
// full table of live counters does not cost a scan per request.
func (b *Budgets) sweepLocked(now time.Time) {
	if now.Sub(b.lastSweep) < time.Second {
		return
	}
	b.lastSweep = now
	for k, c := range b.counters {
		if now.Sub(c.start) >= c.window {
			delete(b.counters, k)
		}
	}
}
