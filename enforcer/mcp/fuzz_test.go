package mcp_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

// stdRequest is encoding/json's reading of a message, which an accepted
// call must agree with. Params stays raw: the parser reads params only for
// the methods it knows, and so accepts, say, a number "name" elsewhere.
type stdRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// agree fails t when c says something other than std does.
func agree(t *testing.T, c mcp.Call, std stdRequest) {
	t.Helper()
	if c.Kind == "" {
		return
	}
	if std.Method != c.Method {
		t.Fatalf("Parse read method %q, encoding/json %q", c.Method, std.Method)
	}
	if isResponse := std.Result != nil || std.Error != nil; isResponse != (c.Kind == mcp.KindResponse) {
		t.Fatalf("Parse read a %s, encoding/json a result %s or an error %s", c.Kind, std.Result, std.Error)
	}
	if c.Kind == mcp.KindResponse && (c.Method != "" || std.Params != nil) {
		t.Fatalf("a response with method %q or params %s", c.Method, std.Params)
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

// lenientReadings are the texts that decoders more lenient than the
// parser read from body: as sent; as UTF-16 and UTF-32 of either byte
// order; as Latin-1; each with any leading BOM, zero-width space, Unicode
// white space and ASCII control characters dropped. Written independently
// of the parser's sniffing, which it checks.
func lenientReadings(body []byte) [][]byte {
	texts := []string{string(body)}
	var latin1 []rune
	for _, b := range body {
		latin1 = append(latin1, rune(b))
	}
	texts = append(texts, string(latin1))
	for _, big := range []bool{false, true} {
		order := binary.ByteOrder(binary.LittleEndian)
		if big {
			order = binary.BigEndian
		}
		var u16 []uint16
		for i := 0; i+1 < len(body); i += 2 {
			u16 = append(u16, order.Uint16(body[i:]))
		}
		texts = append(texts, string(utf16.Decode(u16)))
		var u32 []rune
		for i := 0; i+3 < len(body); i += 4 {
			u32 = append(u32, rune(order.Uint32(body[i:])))
		}
		texts = append(texts, string(u32))
	}
	out := make([][]byte, 0, len(texts))
	for _, t := range texts {
		t = strings.TrimLeftFunc(t, func(r rune) bool {
			return unicode.IsSpace(r) || r < 0x20 || r == 0x7f || r == '\ufeff' || r == '\u200b'
		})
		out = append(out, []byte(t))
	}
	return out
}

// plainAsDecoded fails t when a lenient decoder reads a body that the
// parser took for plain HTTP as a JSON-RPC message: an array, or an object
// with a member that is, in some case, jsonrpc, method, result or error.
func plainAsDecoded(t *testing.T, body []byte) {
	t.Helper()
	for _, text := range lenientReadings(body) {
		var v any
		if json.Unmarshal(text, &v) != nil {
			continue
		}
		switch v := v.(type) {
		case []any:
			t.Fatalf("plain HTTP, but read as an array: %q", text)
		case map[string]any:
			for k := range v {
				for _, m := range []string{"jsonrpc", "method", "result", "error"} {
					if strings.EqualFold(k, m) {
						t.Fatalf("plain HTTP, but read as a message with %q: %q", k, text)
					}
				}
			}
		}
	}
}

// FuzzParse checks that Parse never panics, that every error is a JSON-RPC
// error with a valid response body, that a parsed call agrees with
// encoding/json's own reading of the body, and that no lenient decoder
// reads a message from what Parse calls plain HTTP.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"ping"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0"}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","name":"b"}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"file:///x"}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","arguments":{"a":"b"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":0,"result":{"content":{"type":"text","text":"hi"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x","data":[1]}}`))
	f.Add([]byte(`{"id":1,"method":"tools/call","params":{"name":"shell"}}`))
	f.Add([]byte("\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}"))
	f.Add([]byte("\xff\xfe{\x00}\x00"))
	f.Add([]byte("\x00[\x00]"))
	f.Add([]byte("/* c */ {}"))
	f.Add([]byte("\u00a0{\"q\":1}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := mcp.Parse(body)
		if err != nil {
			checkError(t, err)
			return
		}
		if c.Kind == "" {
			plainAsDecoded(t, body)
			return
		}
		var std stdRequest
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("Parse accepted what encoding/json rejects: %v", err)
		}
		agree(t, c, std)
	})
}
