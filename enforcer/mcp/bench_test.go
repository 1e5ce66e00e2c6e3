package mcp_test

import (
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

// typicalCall is a tools/call body of the size agents send: a handful of
// arguments, one nested object and a short array.
const typicalCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_tickets",` +
	`"arguments":{"query":"refund request from acme corp","limit":25,"include_closed":false,` +
	`"filters":{"priority":["high","urgent"],"created_after":"2025-01-01T00:00:00Z","assignee":"team-billing"}},` +
	`"_meta":{"progressToken":"tok-8842"}}}`

func BenchmarkParse(b *testing.B) {
	b.Run("tools_call", func(b *testing.B) {
		body := []byte(typicalCall)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := mcp.Parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
