package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

func TestBundle(t *testing.T) {
	p, err := policy.Load("testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID() != "bundle" || !slices.Equal(p.Files(), []string{"acme.yaml", "default.yaml"}) || !slices.Equal(p.Tenants(), []string{"*", "acme"}) {
		t.Fatalf("bundle id %q files %v tenants %v", p.ID(), p.Files(), p.Tenants())
	}
	tests := []struct {
		name        string
		in          policy.Input
		wantEffect  event.Effect
		wantPolicy  string
		wantRule    string
		wantShadow  []string
		wantRedact  []string
		wantCode    string
		wantBudget  bool
		wantErrRule bool
	}{
		{name: "tenant without a policy gets the default", in: policy.Input{Tenant: "globex", RPCMethod: "tools/call", Tool: "search"}, wantEffect: event.EffectAllow, wantPolicy: "baseline", wantRule: "allow-search"},
		{name: "tenant policy replaces the default", in: policy.Input{Tenant: "acme", RPCMethod: "tools/call", Tool: "search"}, wantEffect: event.EffectDeny, wantPolicy: "acme-tools", wantRule: policy.DefaultDenyRule},
		{
			name:       "audit rule is shadow and evaluation goes on",
			in:         policy.Input{Tenant: "acme", Tool: "fetch", Destination: "internet", DataClass: "confidential", Args: map[string]any{"ip": "10.0.0.1", "url": ""}},
			wantEffect: event.EffectAllow, wantPolicy: "acme-tools", wantRule: "allow-fetch-internal", wantShadow: []string{"audit-internet-egress"},
		},
		{
			name:       "audit rule condition false is not shadow",
			in:         policy.Input{Tenant: "acme", Tool: "fetch", Destination: "internet", DataClass: "public", Args: map[string]any{"ip": "10.0.0.1", "url": ""}},
			wantEffect: event.EffectAllow, wantPolicy: "acme-tools", wantRule: "allow-fetch-internal",
		},
		{
			name:       "shadow recorded on default deny too",
			in:         policy.Input{Tenant: "acme", Tool: "upload", Destination: "internet", DataClass: "pii"},
			wantEffect: event.EffectDeny, wantPolicy: "acme-tools", wantRule: policy.DefaultDenyRule, wantShadow: []string{"audit-internet-egress"},
		},
		{
			name:       "obligations of the deciding rule",
			in:         policy.Input{Tenant: "acme", Session: "s", Tool: "send_email", Args: map[string]any{"to": "a@acme.example"}},
			wantEffect: event.EffectAllow, wantPolicy: "acme-tools", wantRule: "allow-send-email", wantRedact: []string{"body", "auth.token"}, wantBudget: true,
		},
		{
			name:       "budget per session without a session is denied",
			in:         policy.Input{Tenant: "acme", Tool: "send_email", Args: map[string]any{"to": "a@acme.example"}},
			wantEffect: event.EffectDeny, wantPolicy: "acme-tools", wantRule: "allow-send-email", wantCode: policy.DecisionBudgetNoScope, wantRedact: []string{"body", "auth.token"}, wantBudget: true,
		},
		{
			name:       "condition false falls through",
			in:         policy.Input{Tenant: "acme", Session: "s", Tool: "send_email", Args: map[string]any{"to": "a@evil.example"}},
			wantEffect: event.EffectDeny, wantPolicy: "acme-tools", wantRule: policy.DefaultDenyRule,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(context.Background(), &tt.in)
			if d.Effect != tt.wantEffect || d.PolicyID != tt.wantPolicy || d.RuleID != tt.wantRule || d.Code != tt.wantCode {
				t.Fatalf("decision %s by %s/%s code %q (%s), want %s by %s/%s code %q", d.Effect, d.PolicyID, d.RuleID, d.Code, d.Reason, tt.wantEffect, tt.wantPolicy, tt.wantRule, tt.wantCode)
			}
			if !slices.Equal(d.Shadow, tt.wantShadow) || !slices.Equal(d.Obligations.Redact, tt.wantRedact) || (d.Obligations.Budget != nil) != tt.wantBudget {
				t.Errorf("shadow %v redact %v budget %v, want %v %v %v", d.Shadow, d.Obligations.Redact, d.Obligations.Budget, tt.wantShadow, tt.wantRedact, tt.wantBudget)
			}
			if d.PolicyHash != p.Hash() || d.Event().Code != d.Code {
				t.Errorf("decision %+v", d)
			}
		})
	}
}

func TestNoPolicyForTenant(t *testing.T) {
	p, err := policy.Parse("t.yaml", []byte("id: only-acme\ntenant: acme\nrules:\n  - {id: all, match: 'true', effect: allow}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(context.Background(), &policy.Input{Tenant: "globex"})
	if d.Effect != event.EffectDeny || d.Code != policy.DecisionNoPolicy || d.RuleID != policy.DefaultDenyRule {
		t.Fatalf("decision %+v", d)
	}
	if d := p.Decide(context.Background(), &policy.Input{Tenant: "acme"}); d.Effect != event.EffectAllow {
		t.Fatalf("decision %+v", d)
	}
}

func TestLoadFilesErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", "id: a\ntenant: acme\n")
	b := write("b.yaml", "id: b\ntenant: acme\n")
	c := write("c.yaml", "id: c\nrules:\n  - {id: r, match: 'nope', effect: allow}\n")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		load func() error
		want *policy.Error
		file string
	}{
		{"duplicate tenant", func() error { _, err := policy.LoadFiles("x", []string{a, b}); return err }, policy.ErrDuplicateTen, "b.yaml"},
		{"compile error names the file", func() error { _, err := policy.LoadFiles("x", []string{a, c}); return err }, policy.ErrCompile, "c.yaml"},
		{"missing file", func() error { _, err := policy.Load(filepath.Join(dir, "nope.yaml")); return err }, policy.ErrRead, ""},
		{"empty directory", func() error { _, err := policy.Load(empty); return err }, policy.ErrEmptyBundle, ""},
		{"too large", func() error {
			_, err := policy.Parse("big.yaml", []byte("id: x\n#"+strings.Repeat("x", policy.MaxFileBytes)))
			return err
		}, policy.ErrRead, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %s", err, tt.want.Code)
			}
			var pe *policy.Error
			if tt.file != "" && (!errors.As(err, &pe) || pe.File != tt.file) {
				t.Errorf("error %v does not name %s", err, tt.file)
			}
		})
	}
}

func TestBudgets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	y := "id: b\nrules:\n" +
		"  - id: per-task\n    match: 'tool == \"t\"'\n    effect: allow\n    obligations: {budget: {per: task, calls: 2, window: 1m}}\n" +
		"  - id: per-session\n    match: 'tool == \"s\"'\n    effect: allow\n    obligations: {budget: {per: session, calls: 1, window: 1h}}\n"
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 2, MaxTotal: 3})
	p, err := policy.Parse("b.yaml", []byte(y), policy.WithBudgets(budgets), policy.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		advance    time.Duration
		in         policy.Input
		wantEffect event.Effect
		wantCode   string
		wantUsed   int64
	}
	steps := []struct {
		name string
		step
	}{
		{"task call 1", step{in: policy.Input{Task: "k1", Tool: "t"}, wantEffect: event.EffectAllow, wantUsed: 1}},
		{"task call 2", step{in: policy.Input{Task: "k1", Tool: "t"}, wantEffect: event.EffectAllow, wantUsed: 2}},
		{"task call 3 over budget", step{in: policy.Input{Task: "k1", Tool: "t"}, wantEffect: event.EffectDeny, wantCode: policy.DecisionBudgetExceeded, wantUsed: 2}},
		{"other task", step{in: policy.Input{Task: "k2", Tool: "t"}, wantEffect: event.EffectAllow, wantUsed: 1}},
		{"other tenant same task", step{in: policy.Input{Tenant: "x", Task: "k1", Tool: "t"}, wantEffect: event.EffectAllow, wantUsed: 1}},
		{"full partition refuses a new scope", step{in: policy.Input{Session: "s1", Tool: "s"}, wantEffect: event.EffectDeny, wantCode: policy.DecisionBudgetTableFull}},
		{"window over: counting restarts", step{advance: time.Minute, in: policy.Input{Task: "k1", Tool: "t"}, wantEffect: event.EffectAllow, wantUsed: 1}},
		{"expired counters swept for a new scope", step{in: policy.Input{Session: "s1", Tool: "s"}, wantEffect: event.EffectAllow, wantUsed: 1}},
		{"session budget spent", step{in: policy.Input{Session: "s1", Tool: "s"}, wantEffect: event.EffectDeny, wantCode: policy.DecisionBudgetExceeded, wantUsed: 1}},
		{"no task to count against", step{in: policy.Input{Tool: "t"}, wantEffect: event.EffectDeny, wantCode: policy.DecisionBudgetNoScope}},
	}
	for _, s := range steps {
		advance(s.advance)
		d := p.Decide(context.Background(), &s.in)
		if d.Effect != s.wantEffect || d.Code != s.wantCode || d.Obligations.BudgetUsed != s.wantUsed {
			t.Fatalf("%s: decision %s code %q used %d (%s), want %s code %q used %d", s.name, d.Effect, d.Code, d.Obligations.BudgetUsed, d.Reason, s.wantEffect, s.wantCode, s.wantUsed)
		}
	}
	if n := budgets.Len(); n > 3 {
		t.Errorf("budgets hold %d counters, bound is 3", n)
	}
}

func TestBudgetsConcurrent(t *testing.T) {
	y := "id: b\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: session, calls: 100, window: 1h}}\n"
	p, err := policy.Parse("b.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if d := p.Decide(context.Background(), &policy.Input{Session: "s"}); d.Effect == event.EffectAllow {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("allowed %d of 400 calls on a budget of 100", allowed)
	}
}

// TestCostLimit checks that an expression whose cost the checker cannot
// bound runs metered and is stopped, failing closed, while simple rules
// run unmetered.
func TestCostLimit(t *testing.T) {
	y := "id: c\nrules:\n" +
		"  - id: simple\n    match: 'tool == \"x\" && args.n < 3'\n    effect: deny\n" +
		"  - id: quadratic\n    match: 'args.items.all(a, args.items.all(b, a == b || a != b)) && false'\n    effect: deny\n" +
		"  - id: all\n    match: 'true'\n    effect: allow\n"
	p, err := policy.Parse("c.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	x := policy.Explain(context.Background(), p, &policy.Input{Args: map[string]any{"items": []any{1, 2}}})
	if got := []bool{x.Rules[0].Metered, x.Rules[1].Metered}; !reflect.DeepEqual(got, []bool{false, true}) {
		t.Fatalf("metered = %v, want [false true]", got)
	}
	tests := []struct {
		name       string
		n          int
		wantEffect event.Effect
		wantRule   string
	}{
		{"small input within the limit", 10, event.EffectAllow, "all"},
		{"large input stopped by the meter", 2000, event.EffectDeny, "quadratic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := make([]any, tt.n)
			for i := range items {
				items[i] = int64(i)
			}
			d := p.Decide(context.Background(), &policy.Input{Args: map[string]any{"items": items}})
			if d.Effect != tt.wantEffect || d.RuleID != tt.wantRule {
				t.Fatalf("decision %s by %s (%s), want %s by %s", d.Effect, d.RuleID, d.Reason, tt.wantEffect, tt.wantRule)
			}
			if tt.wantEffect == event.EffectDeny && (d.Code != policy.DecisionEvalError || !strings.Contains(d.Reason, "cost")) {
				t.Errorf("code %q reason %q", d.Code, d.Reason)
			}
		})
	}
}

func TestCanceledContextDenies(t *testing.T) {
	p, err := policy.Parse("c.yaml", []byte("id: c\nrules:\n  - {id: r, match: 'true', effect: allow}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d := p.Decide(ctx, &policy.Input{}); d.Effect != event.EffectDeny || d.Code != policy.DecisionEvalError || d.RuleID != "r" {
		t.Fatalf("decision %+v", d)
	}
}

func TestShadowErrorDoesNotDeny(t *testing.T) {
	y := "id: s\nrules:\n  - {id: a, match: 'args.missing == 1', effect: audit}\n  - {id: r, match: 'true', effect: allow}\n"
	p, err := policy.Parse("s.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(context.Background(), &policy.Input{})
	if d.Effect != event.EffectAllow || !slices.Equal(d.ShadowErrors, []string{"a"}) || len(d.Shadow) != 0 {
		t.Fatalf("decision %+v", d)
	}
}

func TestRedact(t *testing.T) {
	args := func() map[string]any {
		return map[string]any{"to": "bob", "body": "secret", "auth": map[string]any{"token": "t", "user": "u"}, "n": int64(1)}
	}
	tests := []struct {
		name  string
		paths []string
		want  map[string]any
	}{
		{"no paths", nil, args()},
		{"top level", []string{"body"}, map[string]any{"to": "bob", "body": policy.RedactedValue, "auth": map[string]any{"token": "t", "user": "u"}, "n": int64(1)}},
		{"nested", []string{"auth.token"}, map[string]any{"to": "bob", "body": "secret", "auth": map[string]any{"token": policy.RedactedValue, "user": "u"}, "n": int64(1)}},
		{"whole object", []string{"auth"}, map[string]any{"to": "bob", "body": "secret", "auth": policy.RedactedValue, "n": int64(1)}},
		{"missing path ignored", []string{"nope", "auth.nope", "n.x"}, args()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := args()
			got := policy.Redact(in, tt.paths)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Redact = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(in, args()) {
				t.Errorf("Redact modified its input: %v", in)
			}
		})
	}
}
