package mcp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		body     string
		want     mcp.Call // Args and ArgsDigest checked separately
		wantArgs string
		wantCode int // JSON-RPC error code, 0 for none
	}{
		{
			name:     "tools/call",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"rampart"}}}`,
			want:     mcp.Call{RPC: true, ID: json.RawMessage("7"), Method: "tools/call", Tool: "search"},
			wantArgs: `{"q":"rampart"}`,
		},
		{
			name:   "tools/call without arguments",
			method: http.MethodPost,
			body:   `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"list"}}`,
			want:   mcp.Call{RPC: true, ID: json.RawMessage(`"a"`), Method: "tools/call", Tool: "list"},
		},
		{
			name:   "notification",
			method: http.MethodPost,
			body:   `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			want:   mcp.Call{RPC: true, Method: "notifications/initialized"},
		},
		{name: "GET is plain HTTP", method: http.MethodGet, body: `{"jsonrpc":"2.0","method":"tools/call"}`},
		{name: "JSON without jsonrpc is plain HTTP", method: http.MethodPost, body: `{"query":"x"}`},
		{name: "text is plain HTTP", method: http.MethodPost, body: `hello`},
		{name: "empty body", method: http.MethodPost, body: ``},
		{name: "broken JSON", method: http.MethodPost, body: `{"jsonrpc":"2.0",`, wantCode: mcp.CodeParseError},
		{name: "trailing data", method: http.MethodPost, body: `{"jsonrpc":"2.0","method":"x"} {}`, wantCode: mcp.CodeParseError},
		{name: "batch", method: http.MethodPost, body: `[{"jsonrpc":"2.0","method":"x"}]`, wantCode: mcp.CodeInvalidRequest},
		{name: "wrong version", method: http.MethodPost, body: `{"jsonrpc":"1.0","method":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{name: "method not a string", method: http.MethodPost, body: `{"jsonrpc":"2.0","method":1}`, wantCode: mcp.CodeInvalidRequest},
		{name: "object id", method: http.MethodPost, body: `{"jsonrpc":"2.0","id":{},"method":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{
			name:     "duplicate tool name",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate tool name in another case",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate method",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","method":"ping","method":"tools/call"}`,
			wantCode: mcp.CodeParseError,
		},
		{
			// encoding/json would fold "Name" into name; a backend may not.
			name:     "case-folded key is not the name",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{name: "tools/call without params", method: http.MethodPost, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, wantCode: mcp.CodeInvalidParams},
		{
			name:     "arguments not an object",
			method:   http.MethodPost,
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}`,
			wantCode: mcp.CodeInvalidParams,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mcp.Parse(tt.method, []byte(tt.body))
			if tt.wantCode != 0 {
				var me *mcp.Error
				if !errors.As(err, &me) || me.Code != tt.wantCode {
					t.Fatalf("err = %v, want JSON-RPC code %d", err, tt.wantCode)
				}
				var resp struct {
					JSONRPC string `json:"jsonrpc"`
					Error   struct {
						Code int `json:"code"`
					} `json:"error"`
				}
				if err := json.Unmarshal(me.Response(nil), &resp); err != nil || resp.JSONRPC != "2.0" || resp.Error.Code != tt.wantCode {
					t.Errorf("response = %s", me.Response(nil))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Args) != tt.wantArgs {
				t.Errorf("args = %s, want %s", got.Args, tt.wantArgs)
			}
			if tt.wantArgs != "" && got.ArgsDigest != mcp.Digest([]byte(tt.wantArgs)) {
				t.Errorf("digest = %s", got.ArgsDigest)
			}
			got.Args, got.ArgsDigest = nil, ""
			if got.RPC != tt.want.RPC || got.Method != tt.want.Method || got.Tool != tt.want.Tool || !bytes.Equal(got.ID, tt.want.ID) {
				t.Errorf("call = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDigestIsOverRawBytes(t *testing.T) {
	// Same arguments, different spelling: different digests, because the
	// digest attests to what was sent, not to a normal form.
	a, _ := mcp.Parse(http.MethodPost, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"q":1}}}`))
	b, _ := mcp.Parse(http.MethodPost, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{ "q": 1 }}}`))
	if a.ArgsDigest == b.ArgsDigest {
		t.Error("digests equal")
	}
	if want := "sha256:"; !strings.HasPrefix(a.ArgsDigest, want) || len(a.ArgsDigest) != len(want)+64 {
		t.Errorf("digest = %q", a.ArgsDigest)
	}
	args, err := a.Arguments()
	if err != nil || args["q"] != int64(1) {
		t.Errorf("arguments = %v, %v", args, err)
	}
}

func TestReadBody(t *testing.T) {
	if _, err := mcp.ReadBody(strings.NewReader("12345"), 4); !errors.Is(err, mcp.ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
	if b, err := mcp.ReadBody(strings.NewReader("1234"), 4); err != nil || string(b) != "1234" {
		t.Errorf("ReadBody = %q, %v", b, err)
	}
}
