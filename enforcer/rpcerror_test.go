package enforcer_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
)

// TestMCPRefusalsAreJSONRPCErrors: a refused request whose JSON-RPC id is
// known is answered, with the same HTTP status, by a JSON-RPC error for
// that id carrying Rampart's code, rule and request id in data. A client
// such as the official Go SDK keeps its session only when an error body
// reads as JSON-RPC; Rampart's own body made it drop the session.
func TestMCPRefusalsAreJSONRPCErrors(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	auth := "Bearer " + h.token(t)
	send := func(body string) (int, string, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("body %s: %v", raw, err)
		}
		return resp.StatusCode, resp.Header.Get(enforcer.HeaderRequestID), m
	}
	for _, tt := range []struct {
		name, body string
		status     int
		id         any
		code       string
		rpcCode    float64
		rule       string
	}{
		{"denied by policy", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"shell","arguments":{}}}`, 403, 7.0, "policy_denied", -32001, "deny-shell"},
		{"string id", `{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"shell","arguments":{}}}`, 403, "a-1", "policy_denied", -32001, "deny-shell"},
		{"default deny", `{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"x"}}`, 403, 8.0, "policy_denied", -32001, "default-deny"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, rid, m := send(tt.body)
			e, _ := m["error"].(map[string]any)
			data, _ := e["data"].(map[string]any)
			if status != tt.status || m["jsonrpc"] != "2.0" || m["id"] != tt.id || e["code"] != tt.rpcCode ||
				data["code"] != tt.code || data["request_id"] != rid || data["rule_id"] != tt.rule || data["policy_id"] != "e2e" {
				t.Fatalf("status %d body %v", status, m)
			}
		})
	}
	// A notification has no answer to carry an error: Rampart's own body.
	if status, _, m := send(`{"jsonrpc":"2.0","method":"notifications/x"}`); status != 403 || m["jsonrpc"] != nil {
		t.Errorf("notification: %d %v", status, m)
	}
	if h.hits.Load() != 0 {
		t.Errorf("backend hit %d times", h.hits.Load())
	}
}
