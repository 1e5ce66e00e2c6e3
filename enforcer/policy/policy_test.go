package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

func TestDecide(t *testing.T) {
	p, err := policy.Load("testdata/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile("testdata/default.yaml")
	sum := sha256.Sum256(raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); p.Hash() != want {
		t.Errorf("hash = %s, want %s", p.Hash(), want)
	}
	tests := []struct {
		name       string
		in         policy.Input
		wantEffect event.Effect
		wantRule   string
		wantReason string // substring
	}{
		{"first match allows", policy.Input{Tenant: "acme", Tool: "search"}, event.EffectAllow, "allow-search", "read-only"},
		{"other tenant falls through", policy.Input{Tenant: "globex", Tool: "search"}, event.EffectDeny, policy.DefaultDenyRule, "no rule"},
		{"explicit deny", policy.Input{Tenant: "acme", Tool: "shell"}, event.EffectDeny, "deny-shell", "no shell"},
		{"no tool", policy.Input{Tenant: "acme"}, event.EffectDeny, policy.DefaultDenyRule, ""},
		{
			name:       "argument deny",
			in:         policy.Input{Tool: "write_file", Args: map[string]any{"path": "/etc/passwd"}},
			wantEffect: event.EffectDeny, wantRule: "deny-etc",
		},
		{
			name:       "chain and int argument allow",
			in:         policy.Input{Tool: "write_file", Actor: "agent:planner", Chain: []string{"agent:planner"}, Args: map[string]any{"path": "/tmp/x", "size": int64(10)}},
			wantEffect: event.EffectAllow, wantRule: "allow-write-by-planner",
		},
		{
			name:       "double argument compares with int",
			in:         policy.Input{Tool: "write_file", Actor: "agent:planner", Args: map[string]any{"path": "/tmp/x", "size": 10.5}},
			wantEffect: event.EffectAllow, wantRule: "allow-write-by-planner",
		},
		{
			// args.path is missing: the rule cannot be evaluated, so the
			// decision is a deny naming that rule, not a skip to the next.
			name:       "evaluation error fails closed",
			in:         policy.Input{Tool: "write_file", Args: map[string]any{}},
			wantEffect: event.EffectDeny, wantRule: "deny-etc", wantReason: "evaluation error",
		},
		{
			name:       "argument of the wrong type fails closed",
			in:         policy.Input{Tool: "write_file", Args: map[string]any{"path": 3}},
			wantEffect: event.EffectDeny, wantRule: "deny-etc", wantReason: "evaluation error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(context.Background(), &tt.in)
			if d.Effect != tt.wantEffect || d.RuleID != tt.wantRule {
				t.Fatalf("decision = %s by %s (%s), want %s by %s", d.Effect, d.RuleID, d.Reason, tt.wantEffect, tt.wantRule)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", d.Reason, tt.wantReason)
			}
			if d.PolicyID != "default" || d.PolicyHash != p.Hash() || d.Eval <= 0 {
				t.Errorf("decision = %+v", d)
			}
			if ev := d.Event(); ev.RuleID != d.RuleID || ev.EvalNanos != d.Eval.Nanoseconds() {
				t.Errorf("event = %+v", ev)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{
			name: "type error names the rule",
			yaml: "id: p\nrules:\n  - id: not-bool\n    match: 'tool + \"x\"'\n    effect: allow\n",
			want: []string{"p.yaml", `"not-bool"`, "bool"},
		},
		{
			name: "undeclared variable",
			yaml: "id: p\nrules:\n  - id: typo\n    match: 'tol == \"x\"'\n    effect: allow\n",
			want: []string{`"typo"`, "undeclared"},
		},
		{
			name: "dyn is not bool",
			yaml: "id: p\nrules:\n  - id: dyn\n    match: 'args.flag'\n    effect: allow\n",
			want: []string{`"dyn"`, "bool"},
		},
		{
			name: "syntax error",
			yaml: "id: p\nrules:\n  - id: syntax\n    match: 'tool =='\n    effect: allow\n",
			want: []string{`"syntax"`},
		},
		{name: "unknown key", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    priority: 1\n", want: []string{"priority"}},
		{name: "unknown top key", yaml: "id: p\nversion: 2\n", want: []string{"version"}},
		{name: "bad effect", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: permit\n", want: []string{`"r"`, "permit"}},
		{name: "duplicate rule id", yaml: "id: p\nrules:\n  - {id: r, match: 'true', effect: allow}\n  - {id: r, match: 'true', effect: deny}\n", want: []string{"not unique"}},
		{name: "reserved rule id", yaml: "id: p\nrules:\n  - {id: default-deny, match: 'true', effect: allow}\n", want: []string{"not unique"}},
		{name: "no id", yaml: "rules: []\n", want: []string{"id is required"}},
		{name: "empty", yaml: "", want: []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Parse("p.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// BenchmarkDecide evaluates a 20-rule policy where only the last rule
// matches, the worst case short of default deny.
func BenchmarkDecide(b *testing.B) {
	var y strings.Builder
	y.WriteString("id: bench\nrules:\n")
	for i := range 19 {
		fmt.Fprintf(&y, "  - id: r%d\n    match: 'tool == \"tool%d\" && tenant == \"acme\" && args.size < 100'\n    effect: deny\n", i, i)
	}
	y.WriteString("  - id: last\n    match: 'tool in [\"search\", \"read_file\"] && tenant == \"acme\" && actor.startsWith(\"agent:\") && chain_depth <= 3'\n    effect: allow\n")
	p, err := policy.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	in := &policy.Input{
		Tenant: "acme", Subject: "user:alice", Actor: "agent:planner", Chain: []string{"agent:planner"},
		Method: "POST", Host: "mcp.internal", Path: "/mcp", RPCMethod: "tools/call", Tool: "search",
		Args: map[string]any{"q": "rampart", "size": int64(10)},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(ctx, in); d.RuleID != "last" {
			b.Fatalf("decision %+v", d)
		}
	}
}
