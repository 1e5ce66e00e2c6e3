package mcp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

// stdRequest is encoding/json's reading of a request, which an accepted
// call must agree with. Params stays raw: the parser reads params only for
// the methods it knows, and so accepts, say, a number "name" elsewhere.
type stdRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// agree fails t when c says something other than std does.
func agree(t *testing.T, c mcp.Call, std stdRequest) {
	t.Helper()
	if !c.RPC {
		return
	}
	if std.Method != c.Method {
		t.Fatalf("Parse read method %q, encoding/json %q", c.Method, std.Method)
	}
	if c.Tool == "" && c.Prompt == "" && c.Resource == "" {
		return
	}
	var p struct {
		Name      string          `json:"name"`
		URI       string          `json:"uri"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(std.Params, &p); err != nil {
		t.Fatalf("encoding/json cannot read the params of an accepted call: %v", err)
	}
	for _, f := range []struct{ got, want string }{{c.Tool, p.Name}, {c.Prompt, p.Name}, {c.Resource, p.URI}} {
		if f.got != "" && f.got != f.want {
			t.Fatalf("Parse read %q, encoding/json %q", f.got, f.want)
		}
	}
	if c.Resource == "" && !bytes.Equal(c.Args, p.Arguments) {
		t.Fatalf("Parse read arguments %s, encoding/json %s", c.Args, p.Arguments)
	}
	if c.Args != nil {
		if _, err := c.Arguments(); err != nil {
			t.Fatalf("arguments of an accepted call do not decode: %v", err)
		}
	}
}

// checkError fails t unless err is an *mcp.Error with a valid response.
func checkError(t *testing.T, err error) {
	t.Helper()
	var me *mcp.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v is not *mcp.Error", err)
	}
	if !json.Valid(me.Response(nil)) {
		t.Fatalf("invalid response %s", me.Response(nil))
	}
	switch me.Code {
	case mcp.CodeParseError, mcp.CodeInvalidRequest, mcp.CodeInvalidParams:
	default:
		t.Fatalf("unexpected code %d", me.Code)
	}
}

// FuzzParse checks that Parse never panics, that every error is a JSON-RPC
// error with a valid response body, and that a parsed call agrees with
// encoding/json's own reading of the body.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"ping"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0"}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","name":"b"}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"file:///x"}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","arguments":{"a":"b"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := mcp.Parse(http.MethodPost, body)
		if err != nil {
			checkError(t, err)
			return
		}
		if !c.RPC {
			return
		}
		var std stdRequest
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("Parse accepted what encoding/json rejects: %v", err)
		}
		agree(t, c, std)
	})
}

// FuzzParseBatch checks ParseBatch the same way, element by element, and
// that it keeps to the batch limit.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}},{"jsonrpc":"2.0","method":"notifications/initialized"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x","arguments":{"k":1,"K":2}}}]`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`))
	lim := mcp.Limits{MaxBatch: 4, MaxDepth: 16}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := mcp.ParseBatch(http.MethodPost, body, lim)
		if err != nil {
			checkError(t, err)
			return
		}
		if len(b.Calls) == 0 || len(b.Calls) > lim.MaxBatch {
			t.Fatalf("%d calls", len(b.Calls))
		}
		if !b.Array {
			if b.Calls[0].RPC {
				var std stdRequest
				if err := json.Unmarshal(body, &std); err != nil {
					t.Fatalf("ParseBatch accepted what encoding/json rejects: %v", err)
				}
				agree(t, b.Calls[0], std)
			}
			return
		}
		var std []stdRequest
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("ParseBatch accepted what encoding/json rejects: %v", err)
		}
		if len(std) != len(b.Calls) {
			t.Fatalf("%d calls, encoding/json reads %d", len(b.Calls), len(std))
		}
		for i, c := range b.Calls {
			if !c.RPC {
				t.Fatalf("batch element %d is not JSON-RPC", i)
			}
			agree(t, c, std[i])
		}
	})
}
