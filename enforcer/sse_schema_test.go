package enforcer_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// TestToolSchemasPinnedFromSSE: a tools/list answered as an SSE stream
// (the TypeScript SDK's default) pins the listed schemas as a JSON answer
// does. It used to be skipped, so arguments were never validated against
// such a server's schemas.
func TestToolSchemasPinnedFromSSE(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		backend := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			isList := bytes.Contains(h.lastBody, []byte(`"tools/list"`))
			h.mu.Unlock()
			if !isList {
				_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			// A progress notification first, then the answer, its JSON
			// over several data lines, as SSE allows.
			_, _ = io.WriteString(w, "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n")
			_, _ = io.WriteString(w, ": keep-alive\nid: 7\nevent: message\ndata:"+strings.ReplaceAll(listing, "\n", "\ndata: ")+"\n\n")
		})
		c.Upstream = backend.URL
		c.PolicyFile = filepath.Join(h.dir, "schemas-policy.yaml")
		if err := os.WriteFile(c.PolicyFile, []byte(schemasPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	auth := http.Header{"Authorization": {"Bearer " + h.token(t)}, "Accept": {"application/json, text/event-stream"}}
	list := h.post(t, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, auth)
	if list.status != http.StatusOK {
		t.Fatalf("tools/list: %d", list.status)
	}
	if ev := h.events(t, list.requestID, event.KindToolSchema)[event.KindToolSchema]; ev.Decision.Code != "schema_added" {
		t.Errorf("schema event %+v / %+v", ev.Request, ev.Decision)
	}
	if r := h.post(t, toolCall("search", `{"query":"wrong field"}`), auth); r.status != http.StatusBadRequest || errorCode(r) != "args_invalid" {
		t.Fatalf("call against the schema pinned from SSE: %d %v", r.status, r.body)
	}
}
