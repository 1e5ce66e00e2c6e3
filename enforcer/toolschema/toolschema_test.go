package toolschema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-io/rampart/enforcer/toolschema"
)

func registry(t testing.TB, cfg toolschema.Config) *toolschema.Registry {
	t.Helper()
	r, err := toolschema.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestValidate(t *testing.T) {
	r := registry(t, toolschema.Config{Tools: map[string]toolschema.Source{
		"send_email": {File: "testdata/send_email.json"},
		"search": {Schema: map[string]any{
			"type":     "object",
			"required": []any{"query"},
			"properties": map[string]any{
				"query": map[string]any{"type": "string", "minLength": 1},
				"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": 100},
			},
		}},
		"ping": {Schema: map[string]any{"type": "object", "additionalProperties": false}},
	}})
	tests := []struct {
		name        string
		tool        string
		args        string
		wantPointer string // "" with wantKeyword "" means valid
		wantKeyword string
	}{
		{name: "email minimal", tool: "send_email", args: `{"to":["a@b.example"],"subject":"hi","body":""}`},
		{name: "email full", tool: "send_email", args: `{"to":["a@b.example"],"cc":["c@d.example"],"subject":"hi","body":"x","priority":"high",` +
			`"attachments":[{"name":"r.pdf","uri":"s3://bucket/r.pdf","size_bytes":1024}],"send_at":"2025-01-01T00:00:00Z"}`},
		{name: "email missing body", tool: "send_email", args: `{"to":["a@b.example"],"subject":"hi"}`, wantKeyword: "required"},
		{name: "email extra argument", tool: "send_email", args: `{"to":["a@b.example"],"subject":"hi","body":"","bcc":["x@y.example"]}`, wantKeyword: "additionalProperties"},
		{name: "email bad recipient", tool: "send_email", args: `{"to":["a@b.example","not an address"],"subject":"hi","body":""}`, wantPointer: "/to/1", wantKeyword: "pattern"},
		{name: "email no recipient", tool: "send_email", args: `{"to":[],"subject":"hi","body":""}`, wantPointer: "/to", wantKeyword: "minItems"},
		{name: "email attachment from file", tool: "send_email", args: `{"to":["a@b.example"],"subject":"s","body":"","attachments":[{"name":"p","uri":"file:///etc/passwd"}]}`, wantPointer: "/attachments/0/uri", wantKeyword: "pattern"},
		{name: "email attachment too big", tool: "send_email", args: `{"to":["a@b.example"],"subject":"s","body":"","attachments":[{"name":"p","uri":"https://x","size_bytes":99999999}]}`, wantPointer: "/attachments/0/size_bytes", wantKeyword: "maximum"},
		{name: "email fractional size", tool: "send_email", args: `{"to":["a@b.example"],"subject":"s","body":"","attachments":[{"name":"p","uri":"https://x","size_bytes":1.5}]}`, wantPointer: "/attachments/0/size_bytes", wantKeyword: "type"},
		{name: "email bad priority", tool: "send_email", args: `{"to":["a@b.example"],"subject":"s","body":"","priority":"urgent"}`, wantPointer: "/priority", wantKeyword: "enum"},
		{name: "search", tool: "search", args: `{"query":"rampart","limit":10}`},
		{name: "search big integer spelled as float", tool: "search", args: `{"query":"q","limit":1e2}`},
		{name: "search limit too high", tool: "search", args: `{"query":"q","limit":101}`, wantPointer: "/limit", wantKeyword: "maximum"},
		{name: "search query wrong type", tool: "search", args: `{"query":7}`, wantPointer: "/query", wantKeyword: "type"},
		{name: "search no arguments", tool: "search", args: ``, wantKeyword: "required"},
		{name: "search null arguments", tool: "search", args: `null`, wantKeyword: "required"},
		{name: "search arguments not JSON", tool: "search", args: `{"query":`, wantKeyword: ""},
		{name: "ping without arguments", tool: "ping", args: ``},
		{name: "ping with an argument", tool: "ping", args: `{"x":1}`, wantKeyword: "additionalProperties"},
		{name: "unknown tool allowed by default", tool: "other", args: `{"anything":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Validate(tt.tool, json.RawMessage(tt.args))
			valid := tt.wantPointer == "" && tt.wantKeyword == "" && !strings.Contains(tt.name, "not JSON")
			if valid {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			var e *toolschema.Error
			if !errors.As(err, &e) || e.Code != toolschema.ArgsInvalid {
				t.Fatalf("Validate = %v, want args_invalid", err)
			}
			if e.Pointer != tt.wantPointer || e.Keyword != tt.wantKeyword {
				t.Errorf("violation at %q (%s), want %q (%s); detail %s", e.Pointer, e.Keyword, tt.wantPointer, tt.wantKeyword, e.Detail)
			}
			if !errors.Is(err, &toolschema.Error{Code: toolschema.ArgsInvalid}) || toolschema.CodeOf(err) != toolschema.ArgsInvalid {
				t.Error("errors.Is / CodeOf do not match the code")
			}
		})
	}
}

func TestErrorDoesNotQuoteArguments(t *testing.T) {
	r := registry(t, toolschema.Config{Tools: map[string]toolschema.Source{"send_email": {File: "testdata/send_email.json"}}})
	err := r.Validate("send_email", json.RawMessage(`{"to":["secret-value-123"],"subject":"s","body":""}`))
	if err == nil || strings.Contains(err.Error(), "secret-value-123") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestUnknownTools(t *testing.T) {
	tests := []struct {
		name     string
		unknown  string
		tool     string
		wantCode toolschema.Code
	}{
		{name: "allow by default", unknown: "", tool: "other"},
		{name: "allow", unknown: toolschema.UnknownAllow, tool: "other"},
		{name: "deny", unknown: toolschema.UnknownDeny, tool: "other", wantCode: toolschema.ToolUnknown},
		{name: "deny does not touch known tools", unknown: toolschema.UnknownDeny, tool: "known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry(t, toolschema.Config{UnknownTools: tt.unknown, Tools: map[string]toolschema.Source{
				"known": {Schema: map[string]any{"type": "object"}},
			}})
			if got := toolschema.CodeOf(r.Validate(tt.tool, json.RawMessage(`{}`))); got != tt.wantCode {
				t.Errorf("code = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"type":"object","properties":{"a":{"pattern":"(?!x)"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ref.json"), []byte(`{"$ref":"https://example.com/schema.json"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     toolschema.Config
		wantErr string
	}{
		{name: "empty", cfg: toolschema.Config{}},
		{name: "bad unknown_tools", cfg: toolschema.Config{UnknownTools: "maybe"}, wantErr: "unknown_tools"},
		{name: "bad on_change", cfg: toolschema.Config{OnChange: "ignore"}, wantErr: "on_change"},
		{name: "file and schema", cfg: toolschema.Config{Tools: map[string]toolschema.Source{"a": {File: "x", Schema: map[string]any{}}}}, wantErr: "exactly one"},
		{name: "neither file nor schema", cfg: toolschema.Config{Tools: map[string]toolschema.Source{"a": {}}}, wantErr: "exactly one"},
		{name: "missing file", cfg: toolschema.Config{Tools: map[string]toolschema.Source{"a": {File: filepath.Join(dir, "none.json")}}}, wantErr: "no such file"},
		{name: "pattern RE2 cannot run", cfg: toolschema.Config{Tools: map[string]toolschema.Source{"a": {File: filepath.Join(dir, "bad.json")}}}, wantErr: "tools.a"},
		{name: "remote ref", cfg: toolschema.Config{Tools: map[string]toolschema.Source{"a": {File: filepath.Join(dir, "ref.json")}}}, wantErr: "tools.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := toolschema.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// list returns a tools/list answer listing tools, name -> inputSchema.
func list(t testing.TB, nextCursor string, tools ...string) []byte {
	t.Helper()
	var items []string
	for i := 0; i+1 < len(tools); i += 2 {
		items = append(items, fmt.Sprintf(`{"name":%q,"description":"d","inputSchema":%s}`, tools[i], tools[i+1]))
	}
	next := ""
	if nextCursor != "" {
		next = fmt.Sprintf(`,"nextCursor":%q`, nextCursor)
	}
	return []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[` + strings.Join(items, ",") + `]` + next + `}}`)
}

const (
	schemaA  = `{"type":"object","properties":{"q":{"type":"string","maxLength":10}}}`
	schemaA2 = ` { "properties" : { "q" : { "maxLength" : 10, "type" : "string" } }, "type" : "object" } ` // schemaA respelled
	schemaB  = `{"type":"object","properties":{"q":{"type":"string"}}}`                                    // widened
)

// step is one observation and what it must report.
type step struct {
	answer []byte
	cursor string
	want   []string // "tool kind"
}

func kinds(cs []toolschema.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Tool+" "+string(c.Kind))
	}
	return out
}

func TestObserve(t *testing.T) {
	hashA := mustHash(t, schemaA)
	tests := []struct {
		name     string
		cfg      toolschema.Config
		steps    []step
		args     string
		wantCode toolschema.Code // of validating {"q":<args>} on tool s after the steps
		wantPin  string          // hash pinned for s, "" to skip
	}{
		{
			name:     "first listing pins",
			steps:    []step{{answer: list(t, "", "s", schemaA, "t", schemaB), want: []string{"s added", "t added"}}},
			args:     `"a very long query"`,
			wantCode: toolschema.ArgsInvalid,
			wantPin:  hashA,
		},
		{
			name:  "respelled schema is no change",
			steps: []step{{answer: list(t, "", "s", schemaA), want: []string{"s added"}}, {answer: list(t, "", "s", schemaA2)}},
			args:  `"short"`, wantPin: hashA,
		},
		{
			name: "widened schema is reported and the pin kept by default",
			steps: []step{
				{answer: list(t, "", "s", schemaA), want: []string{"s added"}},
				{answer: list(t, "", "s", schemaB), want: []string{"s changed"}},
				{answer: list(t, "", "s", schemaB)}, // reported once
			},
			args: `"a very long query"`, wantCode: toolschema.ArgsInvalid, wantPin: hashA,
		},
		{
			name: "on_change deny refuses calls",
			cfg:  toolschema.Config{OnChange: toolschema.ChangeDeny},
			steps: []step{
				{answer: list(t, "", "s", schemaA), want: []string{"s added"}},
				{answer: list(t, "", "s", schemaB), want: []string{"s changed"}},
			},
			args: `"short"`, wantCode: toolschema.SchemaChanged,
		},
		{
			name: "on_change deny lifts when the backend reverts",
			cfg:  toolschema.Config{OnChange: toolschema.ChangeDeny},
			steps: []step{
				{answer: list(t, "", "s", schemaA), want: []string{"s added"}},
				{answer: list(t, "", "s", schemaB), want: []string{"s changed"}},
				{answer: list(t, "", "s", schemaA), want: []string{"s changed"}},
			},
			args: `"short"`, wantPin: hashA,
		},
		{
			name: "on_change accept pins the new schema",
			cfg:  toolschema.Config{OnChange: toolschema.ChangeAccept},
			steps: []step{
				{answer: list(t, "", "s", schemaA), want: []string{"s added"}},
				{answer: list(t, "", "s", schemaB), want: []string{"s changed"}},
			},
			args: `"a very long query"`, wantPin: mustHash(t, schemaB),
		},
		{
			name: "on_change accept never replaces a configured pin",
			cfg: toolschema.Config{OnChange: toolschema.ChangeAccept, Tools: map[string]toolschema.Source{
				"s": {Schema: map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string", "maxLength": 10}}}},
			}},
			steps: []step{{answer: list(t, "", "s", schemaB), want: []string{"s changed"}}},
			args:  `"a very long query"`, wantCode: toolschema.ArgsInvalid, wantPin: hashA,
		},
		{
			name: "configured pin listed alike is no change",
			cfg: toolschema.Config{Tools: map[string]toolschema.Source{
				"s": {Schema: map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string", "maxLength": 10}}}},
			}},
			steps: []step{{answer: list(t, "", "s", schemaA2)}},
			args:  `"short"`, wantPin: hashA,
		},
		{
			name: "removal and return",
			steps: []step{
				{answer: list(t, "", "s", schemaA, "t", schemaB), want: []string{"s added", "t added"}},
				{answer: list(t, "", "t", schemaB), want: []string{"s removed"}},
				{answer: list(t, "", "t", schemaB)},
				{answer: list(t, "", "s", schemaA, "t", schemaB), want: []string{"s added"}},
			},
			args: `"short"`, wantPin: hashA,
		},
		{
			name: "pages report no removals",
			steps: []step{
				{answer: list(t, "", "s", schemaA, "t", schemaB), want: []string{"s added", "t added"}},
				{answer: list(t, "page2", "t", schemaB)},
				{answer: list(t, "", "u", schemaB), cursor: "page2", want: []string{"u added"}},
			},
			args: `"short"`, wantPin: hashA,
		},
		{
			name:  "observe off pins nothing",
			cfg:   toolschema.Config{Observe: new(false), UnknownTools: toolschema.UnknownDeny},
			steps: []step{{answer: list(t, "", "s", schemaA), want: []string{"s added"}}, {answer: list(t, "", "s", schemaA)}},
			args:  `"short"`, wantCode: toolschema.ToolUnknown,
		},
		{
			name:  "uncompilable listed schema refuses calls",
			steps: []step{{answer: list(t, "", "s", `{"type":"object","properties":{"q":{"pattern":"(?<=a)b"}}}`), want: []string{"s added"}}},
			args:  `"short"`, wantCode: toolschema.SchemaInvalid,
		},
		{
			name:  "listed schema with a remote ref is not fetched",
			steps: []step{{answer: list(t, "", "s", `{"$ref":"http://127.0.0.1:1/x.json"}`), want: []string{"s added"}}},
			args:  `"short"`, wantCode: toolschema.SchemaInvalid,
		},
		{
			name: "error answers are ignored",
			steps: []step{
				{answer: list(t, "", "s", schemaA), want: []string{"s added"}},
				{answer: []byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x"}}`)},
			},
			args: `"short"`, wantPin: hashA,
		},
		{
			name:  "batch answer",
			steps: []step{{answer: []byte(`[{"jsonrpc":"2.0","id":1,"result":{}},` + string(list(t, "", "s", schemaA)) + `]`), want: []string{"s added"}}},
			args:  `"short"`, wantPin: hashA,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry(t, tt.cfg)
			for i, s := range tt.steps {
				changes, err := r.ObservePage(s.answer, s.cursor)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if fmt.Sprint(kinds(changes)) != fmt.Sprint(s.want) {
					t.Fatalf("step %d: changes %v, want %v", i, kinds(changes), s.want)
				}
			}
			if got := toolschema.CodeOf(r.Validate("s", json.RawMessage(`{"q":`+tt.args+`}`))); got != tt.wantCode {
				t.Errorf("Validate code = %q, want %q", got, tt.wantCode)
			}
			if tt.wantPin != "" {
				if got, _ := toolschema.PinnedHash(r, "s"); got != tt.wantPin {
					t.Errorf("s pinned at %q, want %s", got, tt.wantPin)
				}
			}
		})
	}
}

func TestChangeCarriesHashes(t *testing.T) {
	r := registry(t, toolschema.Config{})
	if _, err := r.Observe(list(t, "", "s", schemaA)); err != nil {
		t.Fatal(err)
	}
	changes, err := r.Observe(list(t, "", "s", schemaB))
	if err != nil || len(changes) != 1 {
		t.Fatalf("changes = %v, %v", changes, err)
	}
	want := toolschema.Change{Tool: "s", Kind: toolschema.Changed, OldHash: mustHash(t, schemaA), NewHash: mustHash(t, schemaB),
		Pinned: mustHash(t, schemaA), Origin: toolschema.OriginObserved}
	if changes[0] != want {
		t.Errorf("change = %+v, want %+v", changes[0], want)
	}
}

// Under on_change deny a changed schema refuses calls until the backend
// lists the pinned schema again; nothing but configuration pins the new one.
func TestDenyUntilListedAgain(t *testing.T) {
	r := registry(t, toolschema.Config{OnChange: toolschema.ChangeDeny})
	short, long := json.RawMessage(`{"q":"short"}`), json.RawMessage(`{"q":"a very long query"}`)
	for _, answer := range [][]byte{list(t, "", "s", schemaA), list(t, "", "s", schemaB), list(t, "", "s", schemaB)} {
		if _, err := r.Observe(answer); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range []json.RawMessage{short, long} {
		if got := toolschema.CodeOf(r.Validate("s", args)); got != toolschema.SchemaChanged {
			t.Fatalf("changed schema, %s: code %q, want %q", args, got, toolschema.SchemaChanged)
		}
	}
	if hash, _ := toolschema.PinnedHash(r, "s"); hash != mustHash(t, schemaA) {
		t.Fatalf("pin moved to %s", hash)
	}
	changes, err := r.Observe(list(t, "", "s", schemaA))
	if err != nil || fmt.Sprint(kinds(changes)) != "[s changed]" {
		t.Fatalf("listing the pinned schema again: %v, %v", kinds(changes), err)
	}
	if err := r.Validate("s", short); err != nil {
		t.Errorf("back to the pinned schema, Validate = %v", err)
	}
	if got := toolschema.CodeOf(r.Validate("s", long)); got != toolschema.ArgsInvalid {
		t.Errorf("back to the pinned schema, long query: code %q, want %q", got, toolschema.ArgsInvalid)
	}
}

func TestObserveRefuses(t *testing.T) {
	tests := []struct {
		name   string
		answer string
	}{
		{name: "not JSON", answer: `{"result":`},
		{name: "tool without a name", answer: `{"result":{"tools":[{"inputSchema":{}}]}}`},
		{name: "tool listed twice", answer: `{"result":{"tools":[{"name":"a","inputSchema":{}},{"name":"a","inputSchema":{"type":"object"}}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := registry(t, toolschema.Config{})
			if _, err := r.Observe([]byte(tt.answer)); err == nil {
				t.Fatal("Observe accepted it")
			}
			if _, pins := toolschema.PinnedHash(r, "a"); pins != 0 {
				t.Errorf("%d tools pinned", pins)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	r := registry(t, toolschema.Config{OnChange: toolschema.ChangeAccept})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if i%2 == 0 {
					schema := schemaA
					if j%2 == 0 {
						schema = schemaB
					}
					if _, err := r.Observe(list(t, "", "s", schema)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				err := r.Validate("s", json.RawMessage(`{"q":"short"}`))
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustHash(t testing.TB, schema string) string {
	t.Helper()
	c, err := toolschema.Canonical([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	return toolschema.Hash(c)
}
