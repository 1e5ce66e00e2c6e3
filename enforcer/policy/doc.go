// Package policy decides whether a request may reach the backend. A bundle
// (a directory or set of YAML files) holds one policy per tenant and an
// optional "*" default; a policy is an ordered list of rules whose match
// and condition are CEL expressions over the caller's identity and the
// tool call. Bundles are parsed, type-checked and planned once (Load),
// then evaluated per request (Decide): the first applying allow or deny
// rule decides, audit rules are recorded as shadow matches, and anything
// unmatched or failing is denied. Rules may attach obligations (redact
// argument paths in the audit record, a per-session or per-task call
// budget counted in Budgets). A Watcher swaps in a changed bundle without
// a restart, and RunFixtures and Explain back `rampart policy test|eval`.
//
// The phases are those of cel-go: decode (spec.go, strict YAML with line
// numbers), compile (policy.go, cost.go, functions.go), evaluate
// (policy.go, input.go), and around them reload (watch.go) and tooling
// (fixtures.go, explain.go).
package policy
