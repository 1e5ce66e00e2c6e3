package mcp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

// FuzzParse checks that Parse never panics, that every error is a JSON-RPC
// error with a valid response body, and that a parsed tool call agrees with
// encoding/json's own reading of the body.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"ping"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0"}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","name":"b"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := mcp.Parse(http.MethodPost, body)
		if err != nil {
			var me *mcp.Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not *mcp.Error", err)
			}
			if !json.Valid(me.Response(nil)) {
				t.Fatalf("invalid response %s", me.Response(nil))
			}
			return
		}
		if c.Tool == "" {
			return
		}
		var std struct {
			Method string `json:"method"`
			Params struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"params"`
		}
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("Parse accepted what encoding/json rejects: %v", err)
		}
		if std.Method != c.Method || std.Params.Name != c.Tool {
			t.Fatalf("Parse read %q/%q, encoding/json %q/%q", c.Method, c.Tool, std.Method, std.Params.Name)
		}
		if c.Args != nil {
			if _, err := c.Arguments(); err != nil {
				t.Fatalf("arguments of an accepted call do not decode: %v", err)
			}
		}
	})
}
