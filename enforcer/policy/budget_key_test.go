package policy

import "testing"

// Ids that run together when concatenated still key different counters,
// as do the same ids under another scope kind.
func TestBudgetKeyOfIsUnambiguous(t *testing.T) {
	type parts struct {
		policy, rule string
		per          BudgetScope
		scope        string
	}
	tests := []struct {
		name string
		a, b parts
	}{
		{"policy and rule", parts{"ab", "c", PerSession, "s"}, parts{"a", "bc", PerSession, "s"}},
		{"rule and kind", parts{"p", "r", PerTask, "s"}, parts{"p", "r" + string(PerTask), "", "s"}},
		{"kind and scope", parts{"p", "r", PerSession, "s"}, parts{"p", "r", PerTask, "s"}},
		{"scope", parts{"p", "r", PerSession, "s1"}, parts{"p", "r", PerSession, "s2"}},
	}
	key := func(p parts) budgetKey { return budgetKeyOf(p.policy, p.rule, p.per, p.scope) }
	for _, tt := range tests {
		if key(tt.a) == key(tt.b) {
			t.Errorf("%s: %+v and %+v share a key", tt.name, tt.a, tt.b)
		}
	}
}
