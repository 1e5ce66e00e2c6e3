// Package workload drives simulated agent traffic through an enforcer: a
// demo identity provider that signs delegated tokens, a scenario of agent
// sessions across tenants (allowed and denied tool calls), and a driver
// that sends it and tallies what came back.
package workload
