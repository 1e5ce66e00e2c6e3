package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	// The hash is that of `sha256sum default.yaml | sha256sum`.
	raw, _ := os.ReadFile("testdata/default.yaml")
	sum := sha256.Sum256(raw)
	listing := sha256.Sum256([]byte(hex.EncodeToString(sum[:]) + "  default.yaml\n"))
	if want := "sha256:" + hex.EncodeToString(listing[:]); p.Hash() != want {
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
		name     string
		yaml     string
		want     []string // substrings of the error
		wantCode *policy.Error
		wantLine int
	}{
		{
			name: "type error names the rule",
			yaml: "id: p\nrules:\n  - id: not-bool\n    match: 'tool + \"x\"'\n    effect: allow\n",
			want: []string{"p.yaml:4", `"not-bool"`, "bool"}, wantCode: policy.ErrNotBool, wantLine: 4,
		},
		{
			name: "undeclared variable",
			yaml: "id: p\nrules:\n  - id: typo\n    match: 'tol == \"x\"'\n    effect: allow\n",
			want: []string{`"typo"`, "undeclared"}, wantCode: policy.ErrCompile, wantLine: 4,
		},
		{
			name: "error on the second line of a block expression",
			yaml: "id: p\nrules:\n  - id: block\n    match: |\n      tool == \"x\" &&\n      nope\n    effect: allow\n",
			want: []string{`"block"`, "undeclared", "p.yaml:6"}, wantCode: policy.ErrCompile, wantLine: 6,
		},
		{
			name: "condition type error",
			yaml: "id: p\nrules:\n  - id: c\n    match: 'true'\n    condition: 'chain_depth'\n    effect: allow\n",
			want: []string{`"c"`, "condition"}, wantCode: policy.ErrNotBool, wantLine: 5,
		},
		{
			name: "dyn is not bool",
			yaml: "id: p\nrules:\n  - id: dyn\n    match: 'args.flag'\n    effect: allow\n",
			want: []string{`"dyn"`, "bool"}, wantCode: policy.ErrNotBool,
		},
		{
			name: "syntax error",
			yaml: "id: p\nrules:\n  - id: syntax\n    match: 'tool =='\n    effect: allow\n",
			want: []string{`"syntax"`},
		},
		{name: "unknown key", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    priority: 1\n", want: []string{"priority", `"r"`}, wantCode: policy.ErrUnknownKey, wantLine: 6},
		{name: "unknown top key", yaml: "id: p\nversion: 2\n", want: []string{"version"}, wantCode: policy.ErrUnknownKey, wantLine: 2},
		{name: "unknown obligation", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {log: true}\n", want: []string{"log"}, wantCode: policy.ErrUnknownKey},
		{name: "unknown budget key", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: session, calls: 1, window: 1m, burst: 2}}\n", want: []string{"burst"}, wantCode: policy.ErrUnknownKey},
		{name: "duplicate key", yaml: "id: p\nid: q\n", want: []string{"twice"}, wantCode: policy.ErrSyntax, wantLine: 2},
		{name: "alias", yaml: "id: &a p\ntenant: *a\n", want: []string{"alias"}, wantCode: policy.ErrSyntax},
		{name: "two documents", yaml: "id: p\n---\nid: q\n", want: []string{"one policy per file"}, wantCode: policy.ErrSyntax},
		{name: "not a mapping", yaml: "- a\n", want: []string{"mapping"}, wantCode: policy.ErrSyntax},
		{name: "rules not a list", yaml: "id: p\nrules: {a: b}\n", want: []string{"list"}, wantCode: policy.ErrSyntax},
		{name: "bad effect", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: permit\n", want: []string{`"r"`, "permit"}, wantCode: policy.ErrInvalidValue, wantLine: 5},
		{name: "no effect", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n", want: []string{"effect is required"}, wantCode: policy.ErrMissing},
		{name: "no match", yaml: "id: p\nrules:\n  - id: r\n    effect: allow\n", want: []string{"match is required"}, wantCode: policy.ErrMissing},
		{name: "duplicate rule id", yaml: "id: p\nrules:\n  - {id: r, match: 'true', effect: allow}\n  - {id: r, match: 'true', effect: deny}\n", want: []string{"not unique", "line 3"}, wantCode: policy.ErrDuplicateRule, wantLine: 4},
		{name: "reserved rule id", yaml: "id: p\nrules:\n  - {id: default-deny, match: 'true', effect: allow}\n", want: []string{"not unique"}, wantCode: policy.ErrDuplicateRule},
		{name: "rule without id", yaml: "id: p\nrules:\n  - {match: 'true', effect: allow}\n", want: []string{"rule 1: id is required"}, wantCode: policy.ErrMissing, wantLine: 3},
		{name: "budget on deny", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: deny\n    obligations: {budget: {per: task, calls: 1, window: 1m}}\n", want: []string{"effect allow"}, wantCode: policy.ErrInvalidValue},
		{name: "budget per user", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: user, calls: 1, window: 1m}}\n", want: []string{"session or task"}, wantCode: policy.ErrInvalidValue},
		{name: "budget zero calls", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: task, calls: 0, window: 1m}}\n", want: []string{"positive"}, wantCode: policy.ErrInvalidValue},
		{name: "budget bad window", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: task, calls: 1, window: soon}}\n", want: []string{"duration"}, wantCode: policy.ErrInvalidValue},
		{name: "budget incomplete", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {budget: {per: task}}\n", want: []string{"needs per, calls and window"}, wantCode: policy.ErrMissing},
		{name: "empty redact path", yaml: "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {redact: [a..b]}\n", want: []string{"empty segment"}, wantCode: policy.ErrInvalidValue},
		{name: "empty tenant", yaml: "id: p\ntenant: ''\n", want: []string{"tenant"}, wantCode: policy.ErrMissing},
		{name: "no id", yaml: "rules: []\n", want: []string{"id is required"}, wantCode: policy.ErrMissing},
		{name: "empty", yaml: "", want: []string{"empty"}, wantCode: policy.ErrMissing},
		{name: "not yaml", yaml: "id: [\n", wantCode: policy.ErrSyntax},
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
			if tt.wantCode != nil && !errors.Is(err, tt.wantCode) {
				t.Errorf("error %q is not %s", err, tt.wantCode.Code)
			}
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *policy.Error", err)
			}
			if tt.wantLine != 0 && pe.Line != tt.wantLine {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tt.wantLine, err)
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

// BenchmarkDecideBundle decides a realistic MCP call on the sample bundle:
// a tenant policy, a shadow rule that applies, and metered rules using
// glob, cidr_contains and starts_with_any before the deciding one.
func BenchmarkDecideBundle(b *testing.B) {
	p, err := policy.Load("testdata/bundle")
	if err != nil {
		b.Fatal(err)
	}
	in := &policy.Input{
		Tenant: "acme", Subject: "user:alice", Actor: "agent:planner", Chain: []string{"agent:planner", "agent:researcher"},
		Issuer: "https://idp.acme.example", Session: "sess-1", Task: "task-1",
		Method: "POST", Host: "mcp.acme.internal", Path: "/mcp", RPCMethod: "tools/call", Tool: "fetch",
		Destination: "internet", DataClass: "pii",
		Args: map[string]any{"ip": "203.0.113.7", "url": "https://wiki.acme.example/runbook", "timeout": int64(30)},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(ctx, in); d.RuleID != "allow-fetch-internal" || len(d.Shadow) != 1 {
			b.Fatalf("decision %+v", d)
		}
	}
}

// TestMessageVariables: each of the message's variables reads its own
// field and no other, so a rule on tool never matches a prompt or a
// resource of the same name.
func TestMessageVariables(t *testing.T) {
	p, err := policy.Parse("vars.yaml", []byte(`id: vars
rules:
  - {id: tool, match: 'tool == "search"', effect: allow}
  - {id: prompt, match: 'prompt == "search"', effect: allow}
  - {id: resource, match: 'resource == "search"', effect: allow}
  - {id: response, match: 'rpc_kind == "response"', effect: allow}
  - {id: verified-session, match: 'session != "" && session_source in ["token", "server"]', effect: allow}
  - {id: client-task, match: 'task_source == "client"', effect: deny}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       policy.Input
		wantRule string
	}{
		{"tools/call", policy.Input{RPCKind: "request", RPCMethod: "tools/call", Tool: "search"}, "tool"},
		{"prompts/get", policy.Input{RPCKind: "request", RPCMethod: "prompts/get", Prompt: "search"}, "prompt"},
		{"resources/read", policy.Input{RPCKind: "request", RPCMethod: "resources/read", Resource: "search"}, "resource"},
		{"response", policy.Input{RPCKind: "response"}, "response"},
		{"notification", policy.Input{RPCKind: "notification", RPCMethod: "notifications/initialized"}, policy.DefaultDenyRule},
		{"plain HTTP", policy.Input{Method: "GET", Path: "/mcp"}, policy.DefaultDenyRule},
		{"issued session", policy.Input{Session: "s", SessionSource: "server"}, "verified-session"},
		{"client-chosen session", policy.Input{Session: "s", SessionSource: "client"}, policy.DefaultDenyRule},
		{"client-chosen task", policy.Input{Task: "t", TaskSource: "client"}, "client-task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := p.Decide(context.Background(), &tt.in); d.RuleID != tt.wantRule {
				t.Errorf("decided by %s (%s), want %s", d.RuleID, d.Reason, tt.wantRule)
			}
		})
	}
}
