package inventory

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkAgent is the collector's per-row cost of the inventory: a
// 2,000-entry inventory (exact SPIFFE IDs, namespace and subject
// prefixes), an event matching only a prefix (the longest path).
func BenchmarkAgent(b *testing.B) {
	var y strings.Builder
	y.WriteString("agents:\n")
	for i := range 500 {
		fmt.Fprintf(&y, "  - spiffe_id: spiffe://acme.example/ns/team-%d/sa/agent\n    team: t%d\n", i, i)
		fmt.Fprintf(&y, "  - spiffe_id: spiffe://acme.example/ns/team-%d/*\n    team: t%d\n", i, i)
		fmt.Fprintf(&y, "  - subject: \"agent:team-%d-*\"\n    team: t%d\n", i, i)
		fmt.Fprintf(&y, "  - subject: \"agent:team-%d:*\"\n    team: t%d\n", i, i)
	}
	ix, err := Parse([]byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	e := agentEvent("spiffe://acme.example/ns/other/sa/x", "user:alice", "agent:team-42-research")
	b.ReportAllocs()
	for b.Loop() {
		if a := ix.Agent(e); a.Team != "t42" {
			b.Fatal(a)
		}
	}
}
