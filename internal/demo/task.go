package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
)

// The orchestrator that declares the demo's task, and the agent that
// works under it, for one acme user: neither is the incident's.
var (
	taskOrchestrator = workload.Caller{Tenant: "acme", Principal: "user:u9@acme.example", Actors: []string{"agent:orchestrator"}}
	taskWorker       = workload.Caller{Tenant: "acme", Principal: "user:u9@acme.example", Actors: []string{"agent:orchestrator", "agent:summariser"}}
)

// TaskRun is the demo's declared task, from its declaration to the call
// refused after its end.
type TaskRun struct {
	ID    string
	Steps []TaskStep
	// Credentials are the credentials view rows of the task, issued and
	// revoked: time, action, reason, jti, audience, expires.
	Credentials [][]string
}

// TaskStep is one request of the task's life.
type TaskStep struct {
	What      string
	Status    int
	Code      string // the refusal's code, "" when allowed
	RequestID string
	// Handed is who minted the token the backend received for a forwarded
	// call ("" when nothing was forwarded).
	Handed string
	// Want is the status the step must get.
	Want int
	// Caller made the step; Tool is the tool it called ("" for the task
	// API).
	Caller workload.Caller
	Tool   string
}

// Results are the task's requests as the workload's results, for what
// counts every call the demo made.
func (t *TaskRun) Results() []workload.Result {
	out := make([]workload.Result, len(t.Steps))
	for i, s := range t.Steps {
		c := workload.Call{Caller: s.Caller, Tool: s.Tool, Want: s.Want}
		if s.Tool != "" {
			c.RPCMethod = "tools/call"
		}
		out[i] = workload.Result{Call: c, Status: s.Status, RequestID: s.RequestID}
	}
	return out
}

// Forwarded is how many of the task's requests reached the backend.
func (t *TaskRun) Forwarded() int {
	n := 0
	for _, s := range t.Steps {
		if s.Handed != "" {
			n++
		}
	}
	return n
}

// runTask declares a task for the file store, calls under it (each call
// reaching the backend with a credential minted for the task), tries a
// tool it did not declare, completes it, and calls under it again.
func runTask(ctx context.Context, enforcerURL string, issuer *workload.Issuer, tools *toolserver.Server) (*TaskRun, error) {
	id := "board-pack-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	run := &TaskRun{ID: id}
	decl := fmt.Sprintf(`{"id":%q,"purpose":"summarise the Q3 board pack","tools":["read_file"],"destinations":["internal"],"data_classes":["confidential"],"max_calls":10,"duration":"10m"}`, id)
	read := func(path string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"` + path + `"}}}`
	}
	steps := []struct {
		what, path, body string
		caller           workload.Caller
		tool             string
		want             int
	}{
		{"declare (orchestrator)", "/_rampart/tasks", decl, taskOrchestrator, "", http.StatusCreated},
		{"read_file /board/q3.pdf", "/mcp", read("/board/q3.pdf"), taskWorker, "read_file", http.StatusOK},
		{"read_file /board/q3-minutes.pdf", "/mcp", read("/board/q3-minutes.pdf"), taskWorker, "read_file", http.StatusOK},
		{"send_email (not declared)", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"x@acme.example"}}}`, taskWorker, "send_email", http.StatusForbidden},
		{"complete (orchestrator)", "/_rampart/tasks/" + id + "/complete", "", taskOrchestrator, "", http.StatusOK},
		{"read_file after the end", "/mcp", read("/board/q3.pdf"), taskWorker, "read_file", http.StatusForbidden},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, s := range steps {
		tok, err := issuer.Token(s.caller, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, enforcerURL+s.path, bytes.NewReader([]byte(s.body)))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if s.path == "/mcp" {
			req.Header.Set("Agent-Task-Id", id)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("demo: task step %s: %w", s.what, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		st := TaskStep{What: s.what, Status: resp.StatusCode, Want: s.want, RequestID: resp.Header.Get("X-Rampart-Request-Id"), Code: refusalCode(raw),
			Caller: s.caller, Tool: s.tool}
		if s.path == "/mcp" && resp.StatusCode == http.StatusOK {
			st.Handed = issuerOf(tools.Authorization(st.RequestID))
		}
		run.Steps = append(run.Steps, st)
	}
	return run, nil
}

// refusalCode reads Rampart's code from an error body or a JSON-RPC
// error's data.
func refusalCode(raw []byte) string {
	var b struct {
		Error struct {
			Code any `json:"code"`
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return ""
	}
	if c, ok := b.Error.Code.(string); ok {
		return c
	}
	return b.Error.Data.Code
}

// queryTaskCredentials waits until every credential issued under the task
// is recorded revoked too, and keeps the rows.
func (t *TaskRun) queryTaskCredentials(ctx context.Context, ch *chstore.Client, db string) error {
	sql := `SELECT event_time, action, reason, jti, audience, expires_at FROM ` + db + `.credentials
WHERE task_id = '` + strings.ReplaceAll(t.ID, "'", "") + `' ORDER BY event_time_us, action, jti`
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows, err := ch.Query(ctx, sql)
		if err == nil {
			issued, revoked := 0, 0
			for _, r := range rows {
				switch r[1] {
				case "issued":
					issued++
				case "revoked":
					revoked++
				}
			}
			if issued > 0 && revoked == issued {
				t.Credentials = rows
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: task %s: credentials %q after 60s, want each issued one revoked (%v)", t.ID, rows, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
