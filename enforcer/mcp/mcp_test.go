package mcp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     mcp.Call // Args and ArgsDigest checked separately
		wantArgs string
		wantCode int // JSON-RPC error code, 0 for none
	}{
		{
			name:     "tools/call",
			body:     `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"rampart"}}}`,
			want:     mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("7"), Method: "tools/call", Tool: "search"},
			wantArgs: `{"q":"rampart"}`,
		},
		{
			name: "tools/call without arguments",
			body: `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"list"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage(`"a"`), Method: "tools/call", Tool: "list"},
		},
		{
			name: "notification",
			body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			want: mcp.Call{Kind: mcp.KindNotification, Method: "notifications/initialized"},
		},
		{name: "JSON without JSON-RPC members is plain HTTP", body: `{"query":"x"}`},
		{name: "text is plain HTTP", body: `hello`},
		{name: "empty body", body: ``},
		{name: "JSON scalar is plain HTTP", body: `"{\"jsonrpc\":\"2.0\"}"`},
		{name: "binary with zero bytes is plain HTTP", body: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
		{name: "gzip bytes are plain HTTP", body: "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x5b\x7b"},
		{name: "UTF-16 text is plain HTTP", body: "h\x00i\x00"},
		{name: "a C1 control is no white space", body: "\x80[]"},
		{name: "gzip of Unix is plain HTTP", body: "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03[\x00"},
		{name: "leading Latin-1 next line", body: "\x85[]", wantCode: mcp.CodeParseError},
		{name: "a lone slash is plain HTTP", body: "/"},
		{name: "an unclosed comment is plain HTTP", body: "/* {"},
		{name: "method without jsonrpc", body: `{"id":1,"method":"tools/call","params":{"name":"shell"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "result without jsonrpc", body: `{"id":1,"result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "error without jsonrpc", body: `{"id":1,"error":{"code":1,"message":"x"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "misspelled method without jsonrpc", body: `{"id":1,"mEthod":"tools/call","params":{"name":"shell"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "UTF-8 byte order mark", body: "\xef\xbb\xbf" + `{"jsonrpc":"2.0","method":"x"}`, wantCode: mcp.CodeParseError},
		{name: "UTF-16LE", body: "{\x00}\x00", wantCode: mcp.CodeParseError},
		{name: "UTF-16BE", body: "\x00{\x00}", wantCode: mcp.CodeParseError},
		{name: "UTF-16BE with byte order mark", body: "\xfe\xff\x00[\x00]", wantCode: mcp.CodeParseError},
		{name: "UTF-16LE after a line separator", body: "\x28\x20{\x00}\x00", wantCode: mcp.CodeParseError},
		{name: "UTF-32LE with byte order mark", body: "\xff\xfe\x00\x00{\x00\x00\x00}\x00\x00\x00", wantCode: mcp.CodeParseError},
		{name: "UTF-32BE", body: "\x00\x00\x00{\x00\x00\x00}", wantCode: mcp.CodeParseError},
		{name: "leading form feed", body: "\f{}", wantCode: mcp.CodeParseError},
		{name: "leading NUL", body: "\x00{}", wantCode: mcp.CodeParseError},
		{name: "leading no-break space", body: "\u00a0{}", wantCode: mcp.CodeParseError},
		{name: "leading Latin-1 no-break space", body: "\xa0{}", wantCode: mcp.CodeParseError},
		{name: "leading zero-width space", body: "\u200b[]", wantCode: mcp.CodeParseError},
		{name: "leading block comment", body: "/* x */{}", wantCode: mcp.CodeParseError},
		{name: "leading line comment", body: "// x\r\n{}", wantCode: mcp.CodeParseError},
		{name: "leading hash comment", body: "# x\n[]", wantCode: mcp.CodeParseError},
		{name: "invalid UTF-8 in a string", body: "{\"jsonrpc\":\"2.0\",\"method\":\"x\xff\"}", wantCode: mcp.CodeParseError},
		{
			name: "response",
			body: `{"jsonrpc":"2.0","id":0,"result":{"role":"assistant","content":{"type":"text","text":"hi"}}}`,
			want: mcp.Call{Kind: mcp.KindResponse, ID: json.RawMessage("0")},
		},
		{
			name: "error response",
			body: `{"jsonrpc":"2.0","id":"e1","error":{"code":-32601,"message":"no such method","data":{"k":1}}}`,
			want: mcp.Call{Kind: mcp.KindResponse, ID: json.RawMessage(`"e1"`)},
		},
		{
			name: "error response to an unreadable request",
			body: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`,
			want: mcp.Call{Kind: mcp.KindResponse, ID: json.RawMessage("null")},
		},
		{name: "response with a null id", body: `{"jsonrpc":"2.0","id":null,"result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "response without an id", body: `{"jsonrpc":"2.0","result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "response with result and error", body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "request with a result", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell"},"result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "response with params", body: `{"jsonrpc":"2.0","id":1,"result":{},"params":{"name":"shell"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "misspelled result", body: `{"jsonrpc":"2.0","id":1,"Result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "error not an object", body: `{"jsonrpc":"2.0","id":1,"error":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{name: "error code not an integer", body: `{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "error code a string", body: `{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"x"}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "error without a message", body: `{"jsonrpc":"2.0","id":1,"error":{"code":1}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "misspelled error message", body: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x","Message":"y"}}`, wantCode: mcp.CodeInvalidParams},
		{name: "duplicate key in a result", body: `{"jsonrpc":"2.0","id":1,"result":{"action":"accept","Action":"decline"}}`, wantCode: mcp.CodeInvalidParams},
		{name: "broken JSON", body: `{"jsonrpc":"2.0",`, wantCode: mcp.CodeParseError},
		{name: "trailing data", body: `{"jsonrpc":"2.0","method":"x"} {}`, wantCode: mcp.CodeParseError},
		{name: "batch", body: `[{"jsonrpc":"2.0","method":"x"}]`, wantCode: mcp.CodeInvalidRequest},
		{name: "wrong version", body: `{"jsonrpc":"1.0","method":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{name: "method not a string", body: `{"jsonrpc":"2.0","method":1}`, wantCode: mcp.CodeInvalidRequest},
		{name: "object id", body: `{"jsonrpc":"2.0","id":{},"method":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{
			name:     "duplicate tool name",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate tool name in another case",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate method",
			body:     `{"jsonrpc":"2.0","method":"ping","method":"tools/call"}`,
			wantCode: mcp.CodeParseError,
		},
		{
			// encoding/json would fold "Name" into name; a backend may not.
			name:     "case-folded key is not the name",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{name: "tools/call without params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, wantCode: mcp.CodeInvalidParams},
		{
			name: "resources/read",
			body: `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/hosts"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("2"), Method: "resources/read", Resource: "file:///etc/hosts"},
		},
		{
			name: "resources/subscribe",
			body: `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"file:///etc/shadow"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("2"), Method: "resources/subscribe", Resource: "file:///etc/shadow"},
		},
		{
			name: "resources/unsubscribe",
			body: `{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"demo://x"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("2"), Method: "resources/unsubscribe", Resource: "demo://x"},
		},
		{
			name:     "resources/subscribe without uri",
			body:     `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name: "completion of a prompt's argument",
			body: `{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"code-review"},"argument":{"name":"lang","value":"g"}}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("3"), Method: "completion/complete", Prompt: "code-review"},
		},
		{
			name: "completion of a resource template",
			body: `{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///{path}"},"argument":{"name":"path","value":"/e"}}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("3"), Method: "completion/complete", Resource: "file:///{path}"},
		},
		{
			name: "completion of a ref of another type",
			body: `{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/future","x":1},"argument":{}}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("3"), Method: "completion/complete"},
		},
		{
			name:     "completion without ref",
			body:     `{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"argument":{}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "completion of a prompt without a name",
			body:     `{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "resources/read without uri",
			body:     `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"name":"x"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{name: "resources/read without params", body: `{"jsonrpc":"2.0","id":2,"method":"resources/read"}`, wantCode: mcp.CodeInvalidParams},
		{
			name:     "prompts/get",
			body:     `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summarize","arguments":{"style":"brief"}}}`,
			want:     mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("3"), Method: "prompts/get", Prompt: "summarize"},
			wantArgs: `{"style":"brief"}`,
		},
		{
			name: "prompts/get with an escaped name",
			body: `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"sum\u006darize"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("3"), Method: "prompts/get", Prompt: "summarize"},
		},
		{name: "prompts/get with a number name", body: `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":7}}`, wantCode: mcp.CodeInvalidParams},
		{
			name: "tools/list",
			body: `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"abc"}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("4"), Method: "tools/list", Cursor: "abc"},
		},
		{name: "tools/list without params", body: `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`, want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("4"), Method: "tools/list"}},
		{name: "tools/list with a number cursor", body: `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":1}}`, wantCode: mcp.CodeInvalidParams},
		{
			name: "initialize",
			body: `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"agent","version":"1"}}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("0"), Method: "initialize"},
		},
		{
			name: "A2A message/send names no tool",
			body: `{"jsonrpc":"2.0","id":"m1","method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"9"}}}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage(`"m1"`), Method: "message/send"},
		},
		{
			name: "null id is a request, not a notification",
			body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
			want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("null"), Method: "ping"},
		},
		{name: "params a string", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}`, wantCode: mcp.CodeInvalidRequest},
		{name: "tools/call params an array", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}`, wantCode: mcp.CodeInvalidParams},
		{
			// A Go backend decoding into a struct would take the second
			// "path"; policy, decoding into a map, would see both.
			name:     "duplicate argument in another case",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{"path":"/tmp/a","Path":"/etc/shadow"}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate argument deep in an array",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[{"k":1,"k":2}]}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate key folded by the Kelvin sign",
			body:     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":{\"k\":1,\"\u212a\":2}}}",
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate key spelled with an escape",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"q":1,"\u0071":2}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			// A C decoder ends the key at the NUL: a second "name".
			name:     "key with U+0000 beside its prefix",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name\u0000":"shell"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "duplicate params member of an unread method",
			body:     `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"a","protocolVersion":"b"}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{name: "nested 64 deep", body: nested(62), want: mcp.Call{Kind: mcp.KindRequest, ID: json.RawMessage("1"), Method: "tools/call", Tool: "t"}, wantArgs: string(nestedArgs(62))},
		{name: "nested 65 deep", body: nested(63), wantCode: mcp.CodeInvalidRequest},
		{name: "deep plain JSON", body: strings.Repeat("[", 100) + strings.Repeat("]", 100), wantCode: mcp.CodeInvalidRequest},
		{name: "control character in a string", body: "{\"jsonrpc\":\"2.0\",\"method\":\"a\x01\"}", wantCode: mcp.CodeParseError},
		{
			// A Go backend would read "Params" as params, and so a tool
			// call the enforcer took for a request without one.
			name:     "misspelled params",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"shell"}}`,
			wantCode: mcp.CodeInvalidRequest,
		},
		{name: "misspelled jsonrpc", body: `{"JSONRPC":"2.0","id":1,"method":"tools/call","params":{"name":"shell"}}`, wantCode: mcp.CodeInvalidRequest},
		{
			name:     "misspelled arguments",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","Arguments":{"path":"/etc/shadow"}}}`,
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "arguments spelled with the long s",
			body:     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":\"p\",\"argument\u017f\":{}}}",
			wantCode: mcp.CodeInvalidParams,
		},
		{
			name:     "arguments not an object",
			body:     `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}`,
			wantCode: mcp.CodeInvalidParams,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mcp.Parse([]byte(tt.body))
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
			if got.Kind != tt.want.Kind || got.Method != tt.want.Method || got.Tool != tt.want.Tool ||
				got.Resource != tt.want.Resource || got.Prompt != tt.want.Prompt || got.Cursor != tt.want.Cursor || !bytes.Equal(got.ID, tt.want.ID) {
				t.Errorf("call = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDigestIsOverRawBytes(t *testing.T) {
	// Same arguments, different spelling: different digests, because the
	// digest attests to what was sent, not to a normal form.
	a, _ := mcp.Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{"q":1}}}`))
	b, _ := mcp.Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s","arguments":{ "q": 1 }}}`))
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

// nestedArgs returns an arguments object n levels deep.
func nestedArgs(n int) []byte {
	return []byte(strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1))
}

// nested returns a tools/call whose arguments are n levels deep, so the
// body is n+2 levels deep (the request and params enclose them).
func nested(n int) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":` + string(nestedArgs(n)) + `}}`
}

// A JSON-RPC batch is refused whatever it holds, MCP having removed
// batching (2025-06-18); what is not even JSON stays a parse error, and
// the depth limit holds for arrays as for objects.
func TestParseRefusesBatches(t *testing.T) {
	call := func(id int, tool string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"n":%d}}}`, id, tool, id)
	}
	tests := []struct {
		name     string
		body     string
		lim      mcp.Limits
		want     string // method/tool of the call, when accepted
		wantCode int
		wantMsg  string // substring of the error message
	}{
		{name: "single request", body: call(1, "a"), want: "tools/call/a"},
		{name: "plain HTTP", body: `hello`, want: "/"},
		{name: "batch of one", body: "[" + call(1, "a") + "]", wantCode: mcp.CodeInvalidRequest, wantMsg: "batches are not accepted"},
		{name: "batch of calls and a notification", body: "[" + call(1, "a") + `,{"jsonrpc":"2.0","method":"notifications/initialized"}]`, wantCode: mcp.CodeInvalidRequest, wantMsg: "batches are not accepted"},
		{name: "empty batch", body: ` [ ] `, wantCode: mcp.CodeInvalidRequest, wantMsg: "batches are not accepted"},
		{name: "nested batch", body: "[[" + call(1, "a") + "]]", wantCode: mcp.CodeInvalidRequest, wantMsg: "batches are not accepted"},
		{name: "broken batch", body: "[" + call(1, "a") + ",", wantCode: mcp.CodeParseError},
		{name: "duplicate key in an element", body: `[{"jsonrpc":"2.0","method":"a","Method":"b"}]`, wantCode: mcp.CodeInvalidRequest, wantMsg: "batches are not accepted"},
		{name: "depth counts the array", body: "[" + nested(62) + "]", wantCode: mcp.CodeInvalidRequest, wantMsg: "nesting depth"},
		{name: "depth limit configured", body: call(1, "a"), lim: mcp.Limits{MaxDepth: 2}, wantCode: mcp.CodeInvalidRequest, wantMsg: "limit of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mcp.ParseLimited([]byte(tt.body), tt.lim)
			if tt.wantCode != 0 {
				var me *mcp.Error
				if !errors.As(err, &me) || me.Code != tt.wantCode || !strings.Contains(me.Message, tt.wantMsg) {
					t.Fatalf("err = %v, want code %d with %q", err, tt.wantCode, tt.wantMsg)
				}
				if me.ID != nil {
					t.Errorf("a refused body answers with id %s", me.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c := got.Method + "/" + got.Tool; c != tt.want {
				t.Errorf("call = %q, want %q", c, tt.want)
			}
		})
	}
}

func TestNotification(t *testing.T) {
	tests := []struct {
		name string
		body string
		want bool
	}{
		{name: "no id", body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, want: true},
		{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`},
		{name: "number id", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`},
		{name: "plain HTTP", body: `{"q":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mcp.Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.IsNotification() != tt.want {
				t.Errorf("IsNotification = %v, want %v", c.IsNotification(), tt.want)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		lim     mcp.Limits
		wantErr bool
	}{
		{name: "defaults", lim: mcp.Limits{}},
		{name: "set", lim: mcp.Limits{MaxDepth: 10}},
		{name: "negative depth", lim: mcp.Limits{MaxDepth: -1}, wantErr: true},
		{name: "depth beyond encoding/json", lim: mcp.Limits{MaxDepth: 10001}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.lim.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
