package enforcer_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/enforcer/toolschema"
	"github.com/rampart-io/rampart/schema/event"
)

const schemasPolicy = `id: schemas
rules:
  - id: allow-tools
    match: 'rpc_method == "tools/list" || tool in ["search", "send_email"]'
    effect: allow
`

const listing = `{"jsonrpc":"2.0","id":1,"result":{"tools":[
 {"name":"search","inputSchema":{"type":"object","required":["q"],"properties":{"q":{"type":"string"}}}},
 {"name":"read_file","inputSchema":{"type":"object"}}]}}`

func TestSchemasAndDestinationsBeforePolicy(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		backend := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			body := `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`
			h.mu.Lock()
			isList := bytes.Contains(h.lastBody, []byte(`"tools/list"`))
			h.mu.Unlock()
			if isList {
				body = listing
			}
			_, _ = io.WriteString(w, body)
		})
		c.Upstream = backend.URL
		c.PolicyFile = filepath.Join(h.dir, "schemas-policy.yaml")
		if err := os.WriteFile(c.PolicyFile, []byte(schemasPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.ToolSchemas = toolschema.Config{Tools: map[string]toolschema.Source{
			"send_email": {Schema: map[string]any{"type": "object", "required": []any{"to"}, "properties": map[string]any{"to": map[string]any{"type": "string"}}}},
		}}
		c.Destinations = destination.Config{Rules: []destination.Rule{
			{Match: destination.Match{Tool: "search"}, Destination: "internet", DataClass: "public"},
		}}
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}}

	// Arguments that break a configured schema: refused before policy, recorded, never forwarded.
	bad := h.post(t, toolCall("send_email", `{"body":"no recipient"}`), auth)
	if bad.status != http.StatusBadRequest || errorCode(bad) != "args_invalid" {
		t.Fatalf("schema violation: %d %v", bad.status, bad.body)
	}
	if d := h.events(t, bad.requestID, event.KindDecision)[event.KindDecision]; d.Decision.Code != "args_invalid" {
		t.Errorf("decision %+v", d.Decision)
	}
	if h.hits.Load() != 0 {
		t.Fatalf("backend hit %d times", h.hits.Load())
	}

	// The destination map feeds policy and the record.
	ok := h.post(t, toolCall("search", `{"q":"x"}`), auth)
	if ok.status != http.StatusOK {
		t.Fatalf("search: %d %v", ok.status, ok.body)
	}
	if d := h.events(t, ok.requestID, event.KindDecision)[event.KindDecision]; d.Request.Destination != "internet" || d.Request.DataClass != "public" {
		t.Errorf("destination %q / %q", d.Request.Destination, d.Request.DataClass)
	}

	// A tools/list answer pins the backend's schemas, and the change is recorded.
	list := h.post(t, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, auth)
	if list.status != http.StatusOK {
		t.Fatalf("tools/list: %d %v", list.status, list.body)
	}
	if ev := h.events(t, list.requestID, event.KindToolSchema)[event.KindToolSchema]; ev.Decision.Code != "schema_added" {
		t.Errorf("schema event %+v / %+v", ev.Request, ev.Decision)
	}
	if r := h.post(t, toolCall("search", `{"query":"wrong field"}`), auth); r.status != http.StatusBadRequest || errorCode(r) != "args_invalid" {
		t.Fatalf("call against the pinned listing schema: %d %v", r.status, r.body)
	}
}
