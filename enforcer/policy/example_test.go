package policy_test

import (
	"context"
	"fmt"

	"github.com/rampart-io/rampart/enforcer/policy"
)

// A program that embeds Rampart's policy parses a bundle once and decides
// per request: the first applying allow or deny rule decides, audit rules
// are recorded as shadow matches, and what no rule matches is denied.
func Example() {
	bundle := []byte(`
id: tools
rules:
  - id: audit-delegated
    match: 'chain_depth > 1'
    effect: audit
  - id: allow-search
    match: 'tool == "search" && tenant == "acme"'
    effect: allow
    reason: read-only
  - id: deny-shell
    match: 'tool == "shell"'
    effect: deny
`)
	p, err := policy.Parse("tools.yaml", bundle)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, in := range []*policy.Input{
		{Tenant: "acme", Subject: "user:alice", Actor: "agent:planner", Chain: []string{"agent:planner", "agent:researcher"}, RPCKind: "request", RPCMethod: "tools/call", Tool: "search"},
		{Tenant: "acme", Subject: "user:alice", RPCKind: "request", RPCMethod: "tools/call", Tool: "shell"},
		{Tenant: "globex", Subject: "user:bob", RPCKind: "request", RPCMethod: "tools/call", Tool: "search"},
	} {
		d := p.Decide(ctx, in)
		fmt.Printf("%s %s: %s by %q, shadow %v\n", in.Tenant, in.Tool, d.Effect, d.RuleID, d.Shadow)
	}
	// Output:
	// acme search: allow by "allow-search", shadow [audit-delegated]
	// acme shell: deny by "deny-shell", shadow []
	// globex search: deny by "default-deny", shadow []
}
