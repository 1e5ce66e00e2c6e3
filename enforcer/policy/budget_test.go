package policy_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

const sessionBudget = "id: b\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: session, calls: 5, window: 1h}}\n"

func parseBudgeted(tb testing.TB, opts ...policy.Option) *policy.Policy {
	tb.Helper()
	p, err := policy.Parse("b.yaml", []byte(sessionBudget), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// flood makes n calls of tenant, each in a fresh session, and counts the
// decisions by code ("" for allowed).
func flood(p *policy.Policy, tenant string, n int) map[string]int {
	codes := map[string]int{}
	for i := range n {
		d := p.Decide(context.Background(), &policy.Input{Tenant: tenant, Session: fmt.Sprintf("flood-%d", i)})
		codes[d.Code]++
	}
	return codes
}

// The finding: one tenant's fresh sessions filled the table, and another
// tenant's first call was refused as over budget.
func TestBudgetsFloodSparesOtherTenants(t *testing.T) {
	p := parseBudgeted(t)
	flood(p, "flooder", policy.DefaultMaxBudgets+50)
	d := p.Decide(context.Background(), &policy.Input{Tenant: "victim", Session: "s1"})
	if d.Effect != event.EffectAllow || d.Obligations.BudgetUsed != 1 {
		t.Fatalf("other tenant's first call: %s code %q (%s), want allowed with 1 call used", d.Effect, d.Code, d.Reason)
	}
}

// A full table refuses new scopes, truthfully: the refused session has
// spent nothing, so it must not be recorded as budget_exceeded.
func TestBudgetsFullTableIsNotBudgetSpent(t *testing.T) {
	p := parseBudgeted(t)
	codes := flood(p, "flooder", policy.DefaultMaxBudgets+50)
	if codes[policy.DecisionBudgetExceeded] != 0 || codes[policy.DecisionBudgetTableFull] == 0 {
		t.Fatalf("flood decisions by code %v: want refusals as %s, none as %s", codes, policy.DecisionBudgetTableFull, policy.DecisionBudgetExceeded)
	}
	d := p.Decide(context.Background(), &policy.Input{Tenant: "flooder", Session: "one-more"})
	if d.Code != policy.DecisionBudgetTableFull || !strings.Contains(d.Reason, "full") || strings.Contains(d.Reason, "spent") {
		t.Fatalf("refusal %q (%s): want %s saying the table is full, not that a budget is spent", d.Code, d.Reason, policy.DecisionBudgetTableFull)
	}
}

// counterBytes returns the heap held per budget counter after n calls in
// fresh sessions whose ids are idLen bytes long. The ids are dropped by
// the caller before measuring, as a request's are once it is answered.
func counterBytes(tb testing.TB, p *policy.Policy, tenant string, idLen, n int) float64 {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ids := make([]string, n)
	for i := range ids {
		s := fmt.Sprintf("%s-%d-", tenant, i)
		ids[i] = s + strings.Repeat("x", max(0, idLen-len(s)))
	}
	if b, ok := tb.(*testing.B); ok {
		b.StartTimer()
	}
	for _, id := range ids {
		if d := p.Decide(context.Background(), &policy.Input{Tenant: tenant, Session: id}); d.Effect != event.EffectAllow {
			tb.Fatalf("call not allowed: %s (%s)", d.Code, d.Reason)
		}
	}
	if b, ok := tb.(*testing.B); ok {
		b.StopTimer()
	}
	ids = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(p)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// A counter's memory must not grow with the session id: an id is a
// request's to send, up to the body and header limits.
func TestBudgetCounterMemoryIndependentOfIDLength(t *testing.T) {
	const n = 5000
	short := counterBytes(t, parseBudgeted(t), "short", 8, n)
	long := counterBytes(t, parseBudgeted(t), "long", 8<<10, n)
	t.Logf("bytes per counter: %.0f with 8-byte ids, %.0f with 8 KiB ids", short, long)
	// Generous: a property, not a measurement.
	if long > 1024 || long > short+512 {
		t.Fatalf("a counter with an 8 KiB id holds %.0f bytes, with an 8-byte id %.0f: memory grows with the id", long, short)
	}
}

// BenchmarkBudgetCounters charges calls in fresh sessions (each op makes
// one counter) and reports the heap each counter holds.
func BenchmarkBudgetCounters(b *testing.B) {
	for _, idLen := range []int{8, 8 << 10} {
		b.Run(fmt.Sprintf("id=%dB", idLen), func(b *testing.B) {
			b.ReportAllocs()
			b.StopTimer()
			const round = 5000 // counters per fresh table, within a tenant's bound
			var bytes float64
			for left := b.N; left > 0; left -= round {
				n := min(left, round)
				bytes += counterBytes(b, parseBudgeted(b), "bench", idLen, n) * float64(n)
			}
			b.ReportMetric(bytes/float64(b.N), "B/counter")
		})
	}
}

// clock is a settable clock for budget windows.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// call is one budgeted call and the decision expected of it.
type call struct {
	tenant, session string
	wantCode        string // "" for allowed
	wantUsed        int64
	wantReason      string // a part of the reason, when set
}

func (c call) check(t *testing.T, p *policy.Policy) {
	t.Helper()
	d := p.Decide(context.Background(), &policy.Input{Tenant: c.tenant, Session: c.session})
	allowed := d.Effect == event.EffectAllow
	if allowed != (c.wantCode == "") || d.Code != c.wantCode || d.Obligations.BudgetUsed != c.wantUsed || !strings.Contains(d.Reason, c.wantReason) {
		t.Fatalf("%s/%s: %s code %q used %d (%s), want code %q used %d (%s)",
			c.tenant, c.session, d.Effect, d.Code, d.Obligations.BudgetUsed, d.Reason, c.wantCode, c.wantUsed, c.wantReason)
	}
}

func usage(b *policy.Budgets) map[string]int {
	m := map[string]int{}
	b.Usage(func(tenant string, n int) { m[tenant] = n })
	return m
}

// Tenants at their bound together fill the table: then every tenant's new
// scopes are refused as table full, and no counter already held is
// evicted or reset.
func TestBudgetsManyTenantsFillTheTable(t *testing.T) {
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 4, MaxTotal: 10})
	p := parseBudgeted(t, policy.WithBudgets(budgets))
	steps := []call{
		{tenant: "t0", session: "s0", wantUsed: 1},
		{tenant: "t0", session: "s1", wantUsed: 1},
		{tenant: "t0", session: "s2", wantUsed: 1},
		{tenant: "t0", session: "s3", wantUsed: 1},
		{tenant: "t0", session: "s4", wantCode: policy.DecisionBudgetTableFull, wantReason: "tenant's 4 counters"},
		{tenant: "t1", session: "s0", wantUsed: 1},
		{tenant: "t1", session: "s1", wantUsed: 1},
		{tenant: "t1", session: "s2", wantUsed: 1},
		{tenant: "t1", session: "s3", wantUsed: 1},
		{tenant: "t2", session: "s0", wantUsed: 1},
		{tenant: "t2", session: "s1", wantUsed: 1},
		{tenant: "t2", session: "s2", wantCode: policy.DecisionBudgetTableFull, wantReason: "all 10 counters are in use across tenants"},
		{tenant: "t3", session: "s0", wantCode: policy.DecisionBudgetTableFull, wantReason: "all 10 counters"},
		// Held counters keep counting, to their budget and no further.
		{tenant: "t0", session: "s0", wantUsed: 2},
		{tenant: "t2", session: "s1", wantUsed: 2},
		{tenant: "t2", session: "s1", wantUsed: 3},
		{tenant: "t2", session: "s1", wantUsed: 4},
		{tenant: "t2", session: "s1", wantUsed: 5},
		{tenant: "t2", session: "s1", wantCode: policy.DecisionBudgetExceeded, wantUsed: 5, wantReason: "spent"},
		{tenant: "t3", session: "s0", wantCode: policy.DecisionBudgetTableFull},
	}
	for _, c := range steps {
		c.check(t, p)
	}
	if got, want := usage(budgets), map[string]int{"t0": 4, "t1": 4, "t2": 2}; !maps.Equal(got, want) {
		t.Errorf("counters by tenant %v, want %v (a refused tenant keeps no partition)", got, want)
	}
	if n := budgets.Len(); n != 10 {
		t.Errorf("Len = %d, want 10", n)
	}
	if tenant, total := budgets.Refused(); tenant != 1 || total != 3 {
		t.Errorf("refused by a full partition %d, by a full table %d; want 1 and 3", tenant, total)
	}
}

// Room comes back only as windows end: live counters are never swept, and
// expired ones make room in the tenant's partition and in the table.
func TestBudgetsWindowEndFreesRoom(t *testing.T) {
	clk := newClock()
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 2, MaxTotal: 3})
	p := parseBudgeted(t, policy.WithBudgets(budgets), policy.WithClock(clk.Now))
	for _, c := range []call{
		{tenant: "a", session: "s0", wantUsed: 1},
		{tenant: "a", session: "s1", wantUsed: 1},
		{tenant: "a", session: "s2", wantCode: policy.DecisionBudgetTableFull, wantReason: "tenant's"},
		{tenant: "b", session: "s0", wantUsed: 1},
		{tenant: "c", session: "s0", wantCode: policy.DecisionBudgetTableFull, wantReason: "across tenants"},
	} {
		c.check(t, p)
	}
	clk.Advance(59 * time.Minute) // live still: nothing is freed
	for _, c := range []call{
		{tenant: "a", session: "s2", wantCode: policy.DecisionBudgetTableFull},
		{tenant: "c", session: "s0", wantCode: policy.DecisionBudgetTableFull},
		{tenant: "a", session: "s0", wantUsed: 2},
	} {
		c.check(t, p)
	}
	clk.Advance(time.Minute) // the window of 1h is over for all
	for _, c := range []call{
		{tenant: "c", session: "s0", wantUsed: 1}, // the table swept
		{tenant: "a", session: "s2", wantUsed: 1},
		{tenant: "a", session: "s0", wantUsed: 1}, // a new window
		{tenant: "b", session: "s1", wantCode: policy.DecisionBudgetTableFull},
	} {
		c.check(t, p)
	}
	if got, want := usage(budgets), map[string]int{"a": 2, "c": 1}; !maps.Equal(got, want) {
		t.Errorf("counters by tenant %v, want %v (b's expired partition dropped)", got, want)
	}
}

// Counters live in the Budgets, not the bundle: a reload keeps every
// tenant's counts and fullness.
func TestBudgetsSurviveReloadPartitioned(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte(sessionBudget), 0o600); err != nil {
		t.Fatal(err)
	}
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 1, MaxTotal: 2})
	w, err := policy.NewWatcher(policy.WatchConfig{Path: file, Budgets: budgets})
	if err != nil {
		t.Fatal(err)
	}
	steps := func(calls ...call) {
		t.Helper()
		for _, c := range calls {
			c.check(t, w.Policy())
		}
	}
	steps(call{tenant: "a", session: "s0", wantUsed: 1}, call{tenant: "a", session: "s1", wantCode: policy.DecisionBudgetTableFull})
	if err := os.WriteFile(file, []byte(sessionBudget+"# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if w.Policy().Budgets() != budgets || budgets.Len() != 1 {
		t.Fatalf("after reload: budgets %p (want %p) with %d counters, want 1", w.Policy().Budgets(), budgets, budgets.Len())
	}
	steps(call{tenant: "a", session: "s0", wantUsed: 2}, call{tenant: "a", session: "s1", wantCode: policy.DecisionBudgetTableFull},
		call{tenant: "b", session: "s0", wantUsed: 1})
}

// Under concurrent floods from several tenants the bounds hold exactly: no
// tenant beyond its share, the table never beyond its total, and every
// refusal a table-full one.
func TestBudgetsConcurrentTenants(t *testing.T) {
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 50, MaxTotal: 120})
	p := parseBudgeted(t, policy.WithBudgets(budgets))
	var mu sync.Mutex
	allowed, codes := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	for g := range 8 {
		tenant := fmt.Sprintf("t%d", g%4)
		wg.Go(func() {
			for i := range 100 {
				d := p.Decide(context.Background(), &policy.Input{Tenant: tenant, Session: fmt.Sprintf("g%d-%d", g, i)})
				mu.Lock()
				if d.Effect == event.EffectAllow {
					allowed[tenant]++
				}
				codes[d.Code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for tenant, n := range allowed {
		if n > 50 {
			t.Errorf("tenant %s got %d new sessions counted, bound is 50", tenant, n)
		}
		total += n
	}
	if total != 120 || budgets.Len() != 120 || codes[""] != 120 || codes[policy.DecisionBudgetTableFull] != 800-120 {
		t.Errorf("allowed %d, counters %d, decisions by code %v; want 120 allowed and held, the rest table full", total, budgets.Len(), codes)
	}
}
