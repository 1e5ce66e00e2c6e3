package mcp_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

// typicalCall is a tools/call body of the size agents send: a handful of
// arguments, one nested object and a short array.
const typicalCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_tickets",` +
	`"arguments":{"query":"refund request from acme corp","limit":25,"include_closed":false,` +
	`"filters":{"priority":["high","urgent"],"created_after":"2025-01-01T00:00:00Z","assignee":"team-billing"}},` +
	`"_meta":{"progressToken":"tok-8842"}}}`

// batchOf returns a JSON-RPC batch of n tools/call requests.
func batchOf(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"search_tickets",`+
			`"arguments":{"query":"refund request %d","limit":25,"filters":{"priority":["high"]}}}}`, i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

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
	b.Run("batch_of_8", func(b *testing.B) {
		body := batchOf(8)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			batch, err := mcp.ParseBatch(body, mcp.Limits{})
			if err != nil || len(batch.Calls) != 8 {
				b.Fatal(len(batch.Calls), err)
			}
		}
	})
}
