package enforcer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// another starts one more enforcer instance on the harness's JetStream,
// with the harness's keys and policy, and returns its base URL.
func (h *harness) another(t *testing.T, name string, edit func(*enforcer.Config)) string {
	t.Helper()
	url, _ := h.anotherEnforcer(t, name, edit)
	return url
}

// anotherEnforcer is another, returning the instance too.
func (h *harness) anotherEnforcer(t *testing.T, name string, edit func(*enforcer.Config)) (string, *enforcer.Enforcer) {
	t.Helper()
	cfg := h.config(t, 2*time.Second)
	cfg.Instance = name
	if edit != nil {
		edit(&cfg)
	}
	url, addr, onServe := h.url, h.addr, h.onServe
	var e *enforcer.Enforcer
	h.onServe = func(x *enforcer.Enforcer) { e = x }
	h.serve(t, cfg)
	other := h.url
	h.url, h.addr, h.onServe = url, addr, onServe
	return other, e
}

// send makes one request to base+path and reads its answer.
func send(t *testing.T, method, base, path, body string, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, requestID: resp.Header.Get(enforcer.HeaderRequestID)}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// call makes a tools/call of tool under task (header Agent-Task-Id).
func call(t *testing.T, base, tool, taskID string, header http.Header) reply {
	t.Helper()
	return send(t, http.MethodPost, base, "/mcp", toolCall(tool, `{}`), withHeader(header, "Agent-Task-Id", taskID))
}

func declareTask(t *testing.T, base, body string, header http.Header) reply {
	t.Helper()
	return send(t, http.MethodPost, base, "/_rampart/tasks", body, header)
}

func completeTask(t *testing.T, base, id string, header http.Header) reply {
	t.Helper()
	return send(t, http.MethodPost, base, "/_rampart/tasks/"+id+"/complete", "", header)
}

func taskOf(r reply) map[string]any { m, _ := r.body["task"].(map[string]any); return m }

// The task API's abuse cases, each refused with its stable code and
// recorded, and none reaching the backend: only the one allowed call
// under the task does.
func TestTaskAPIAbuse(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice, bob := bearer(h.token(t)), bearer(h.tokenFor(t, "user:bob"))
	globex := bearer(h.tokenWith(t, func(c map[string]any) { c["tenant"] = "globex" }))
	evil := bearer(h.tokenWith(t, func(c map[string]any) { c["tenant"] = "evil" }))
	decl := `{"id":"t-1","purpose":"ticket 1","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"],"max_calls":10,"duration":"10m"}`
	long := strings.Repeat("t", 200)
	type step struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		code                     string
	}
	decls := "/_rampart/tasks"
	steps := []step{
		{"unauthenticated", "POST", decls, decl, nil, 401, "token_missing"},
		{"a forged token", "POST", decls, decl, bearer(h.token(t)[:40] + "x.y.z"), 401, ""},
		{"an expired token", "POST", decls, decl, bearer(h.tokenWith(t, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), 401, "token_expired"},
		{"a tenant policy does not allow", "POST", decls, decl, evil, 403, "policy_denied"},
		{"not a POST", "GET", decls, "", alice, 400, "task_invalid"},
		{"unknown key", "POST", decls, `{"id":"t-1","scopes":["*"]}`, alice, 400, "task_invalid"},
		{"repeated key", "POST", decls, `{"id":"t-1","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"],"tools":["shell"]}`, alice, 400, "task_invalid"},
		{"key in another case", "POST", decls, `{"id":"t-1","Tools":["shell"]}`, alice, 400, "task_invalid"},
		{"two objects", "POST", decls, decl + decl, alice, 400, "task_invalid"},
		{"oversized", "POST", decls, `{"purpose":"` + strings.Repeat("a", 70<<10) + `"}`, alice, 400, "task_invalid"},
		{"id with white space", "POST", decls, `{"id":"t 1"}`, alice, 400, "task_invalid"},
		{"id in unicode", "POST", decls, `{"id":"t-\u0131"}`, alice, 400, "task_invalid"},
		{"id too long", "POST", decls, `{"id":"` + long + `"}`, alice, 400, "task_invalid"},
		{"compressed", "POST", decls, decl, withHeader(alice, "Content-Encoding", "gzip"), 415, "body_encoding_unsupported"},
		{"declared", "POST", decls, decl, alice, 201, ""},
		{"declared again", "POST", decls, decl, alice, 409, "task_exists"},
		{"same id, another tenant's own", "POST", decls, decl, globex, 201, ""},
		{"declared t-2", "POST", decls, `{"id":"t-2","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice, 201, ""},
		{"another tenant completes it", "POST", decls + "/t-2/complete", "", globex, 404, "task_unknown"},
		{"another principal completes it", "POST", decls + "/t-1/complete", "", bob, 403, "task_foreign"},
		{"id in another case", "POST", decls + "/T-1/complete", "", alice, 404, "task_unknown"},
		{"id with white space", "POST", decls + "/%20t-1/complete", "", alice, 400, "task_invalid"},
		{"id in unicode", "POST", decls + "/t-%C4%B1/complete", "", alice, 400, "task_invalid"},
		{"id too long", "POST", decls + "/" + long + "/complete", "", alice, 400, "task_invalid"},
		{"completion with a body", "POST", decls + "/t-1/complete", `{"id":"t-2"}`, alice, 400, "task_invalid"},
		{"no such operation", "POST", decls + "/t-1/abort", "", alice, 404, "not_found"},
		{"completed", "POST", decls + "/t-1/complete", "", alice, 200, ""},
		{"completed again (replayed)", "POST", decls + "/t-1/complete", "{}", alice, 403, "task_ended"},
	}
	var refused []reply
	for i, s := range steps {
		if s.name == "completed" {
			// Before the end: a call under the task reaches the backend.
			if r := call(t, h.url, "search", "t-1", alice); r.status != 200 {
				t.Fatalf("call under t-1: %d %v", r.status, r.body)
			}
		}
		r := send(t, s.method, h.url, s.path, s.body, s.header)
		if r.status != s.status || (s.code != "" && errorCode(r) != s.code) {
			t.Fatalf("step %d %s: %d %v, want %d %s", i, s.name, r.status, r.body, s.status, s.code)
		}
		if r.requestID == "" {
			t.Errorf("step %s: no request id", s.name)
		}
		if s.code != "" {
			refused = append(refused, r)
		}
	}
	if got := taskOf(send(t, "POST", h.url, decls, `{"id":"t-3","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice)); got["id"] != "t-3" || got["deadline"] == nil {
		t.Errorf("declaration answer %v", got)
	}
	for _, r := range []reply{call(t, h.url, "search", "t-1", alice), call(t, h.url, "search", "t-1 ", alice)} {
		if r.status != 403 || errorCode(r) != "task_ended" {
			t.Errorf("call under the completed task: %d %v", r.status, r.body)
		}
	}
	if n := h.hits.Load(); n != 1 {
		t.Errorf("%d requests reached the backend, want the one allowed call", n)
	}
	for _, r := range refused {
		d := h.events(t, r.requestID, event.KindRequest, event.KindDecision)[event.KindDecision]
		want := errorCode(r)
		if want == "policy_denied" {
			want = "" // a rule's own deny
		}
		if d.Decision.Effect != event.EffectDeny || d.Decision.Code != want {
			t.Errorf("refusal %s recorded as %s %q", errorCode(r), d.Decision.Effect, d.Decision.Code)
		}
	}
}

// A task id's other spellings are refused, or name another task: none
// reaches an ended task's state, and a token's task and a header's never
// disagree silently.
func TestTaskIDSpellings(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-9","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	claimed := bearer(h.tokenWith(t, func(c map[string]any) { c["task"] = "t-9" }))
	for name, c := range map[string]struct {
		raw    string
		status int
		code   string
	}{
		"token and header disagree": {post("/mcp", h.tokenWith(t, func(c map[string]any) { c["task"] = "t-9" }), "Agent-Task-Id: t-10\r\n"), 400, "task_mismatch"},
		"two task headers":          {post("/mcp", h.token(t), "Agent-Task-Id: t-9\r\n", "agent-task-id: t-10\r\n"), 400, "client_id_invalid"},
		"unicode":                   {post("/mcp", h.token(t), "Agent-Task-Id: t-\xc4\xb1\r\n"), 400, "client_id_invalid"},
		"very long":                 {post("/mcp", h.token(t), "Agent-Task-Id: "+strings.Repeat("t", 129)+"\r\n"), 400, "client_id_invalid"},
		"inner white space":         {post("/mcp", h.token(t), "Agent-Task-Id: t 9\r\n"), 400, "client_id_invalid"},
	} {
		resp, body, _ := h.rawRequest(t, c.raw)
		if resp.StatusCode != c.status || bodyCode(body) != c.code {
			t.Errorf("%s: %d %v, want %d %s", name, resp.StatusCode, body, c.status, c.code)
		}
	}
	if r := call(t, h.url, "search", "t-9", claimed); r.status != 200 {
		t.Fatalf("token and header agreeing: %d %v", r.status, r.body)
	}
	if r := completeTask(t, h.url, "t-9", alice); r.status != 200 {
		t.Fatalf("complete: %d %v", r.status, r.body)
	}
	// The header's surrounding white space is HTTP's, not the id's.
	for _, raw := range []string{post("/mcp", h.token(t), "Agent-Task-Id:  t-9 \r\n"), post("/mcp", h.token(t), "Agent-Task-Id:\tt-9\r\n")} {
		if resp, body, _ := h.rawRequest(t, raw); resp.StatusCode != 403 || bodyCode(body) != "task_ended" {
			t.Errorf("padded id of the ended task: %d %v", resp.StatusCode, body)
		}
	}
	if r := send(t, "POST", h.url, "/mcp", toolCall("search", `{}`), claimed); r.status != 403 || errorCode(r) != "task_ended" {
		t.Errorf("the ended task in the token's claim: %d %v", r.status, r.body)
	}
}

// A deny rule reading within_task_scope() refuses what the task was not
// declared for with the stable code the detection rule alerts on.
func TestTaskScopeViolationRecorded(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-s","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	if r := call(t, h.url, "search", "t-s", alice); r.status != 200 {
		t.Fatalf("declared tool: %d %v", r.status, r.body)
	}
	r := call(t, h.url, "read_file", "t-s", alice)
	if r.status != 403 || errorCode(r) != "task_scope_violation" || refusalOf(r.body)["rule_id"] != "outside-task" {
		t.Fatalf("undeclared tool: %d %v", r.status, r.body)
	}
	d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if d.Decision.Code != "task_scope_violation" || d.Decision.RuleID != "outside-task" || d.Identity.TaskID != "t-s" {
		t.Errorf("recorded %+v under task %q", d.Decision, d.Identity.TaskID)
	}
	// Undeclared, the same call is the policy's ordinary allow.
	if r := call(t, h.url, "read_file", "t-other", alice); r.status != 200 {
		t.Errorf("undeclared task: %d %v", r.status, r.body)
	}
}

// Two instances share one budget: of 40 calls spread over both, exactly
// the declared 6 are forwarded.
func TestTaskBudgetAcrossEnforcers(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	other := h.another(t, "enf-b", nil)
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-b","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"],"max_calls":6}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	var ok, spent atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := h.url
			if i%2 == 1 {
				base = other
			}
			switch r := call(t, base, "search", "t-b", alice); {
			case r.status == 200:
				ok.Add(1)
			case r.status == 429 && errorCode(r) == "task_budget_exceeded":
				spent.Add(1)
			default:
				t.Errorf("call: %d %v", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 6 || spent.Load() != 34 || h.hits.Load() != 6 {
		t.Fatalf("forwarded %d (backend saw %d), refused as spent %d: want 6 and 34", ok.Load(), h.hits.Load(), spent.Load())
	}
}

// revocation reads a key of the revocations bucket.
func revocation(t *testing.T, h *harness, key string) (stream.Revocation, error) {
	t.Helper()
	kv, err := h.nats.JetStream().KeyValue(context.Background(), stream.Revocations)
	if err != nil {
		return stream.Revocation{}, err
	}
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		return stream.Revocation{}, err
	}
	return stream.DecodeRevocation(e.Value())
}

// revokedEvents returns the credential revoked events of tenant's task.
func (h *harness) revokedEvents(t *testing.T, taskID string) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, e := range h.eventsAll(t) {
		if e.Kind == event.KindCredential && e.Credential.Action == event.CredentialRevoked && e.Identity != nil && e.Identity.TaskID == taskID {
			out = append(out, e)
		}
	}
	return out
}

// An idle task is ended by one of three instances, once: its key and a
// key per credential minted under it at each instance are in the
// revocations, one revoked event per credential is recorded, and every
// instance refuses it after.
func TestIdleTaskEndsOnceAcrossEnforcers(t *testing.T) {
	idle := func(c *enforcer.Config) {
		c.Tasks = task.Config{IdleTimeout: time.Second, SweepInterval: 50 * time.Millisecond}
	}
	h := newHarness(t, 2*time.Second, withCredentials(t), func(h *harness, c *enforcer.Config) { idle(c) })
	withCreds := func(c *enforcer.Config) { credentialsConfig(t, h, c); idle(c) }
	bases := []string{h.url, h.another(t, "enf-b", withCreds), h.another(t, "enf-c", withCreds)}
	alice := bearer(h.token(t))
	var jtis []string
	for _, b := range bases {
		r := call(t, b, "search", "t-idle", alice)
		if r.status != 200 {
			t.Fatalf("call: %d %v", r.status, r.body)
		}
		jtis = append(jtis, h.events(t, r.requestID, event.KindDecision)[event.KindDecision].Decision.CredentialJTI)
	}
	poll.Until(t, 30*time.Second, func() error {
		v, err := revocation(t, h, stream.TaskRevocationKey("acme", "t-idle"))
		if err != nil {
			return err
		}
		if v.Reason != task.EndIdle {
			return fmt.Errorf("revoked for %q", v.Reason)
		}
		return nil
	})
	for _, j := range jtis {
		if v, err := revocation(t, h, stream.JTIRevocationKey(j)); err != nil || v.TaskID != "t-idle" || v.Reason != task.EndIdle {
			t.Errorf("credential %s: %+v %v", j, v, err)
		}
	}
	poll.Until(t, 10*time.Second, func() error {
		if evs := h.revokedEvents(t, "t-idle"); len(evs) != len(jtis) {
			return fmt.Errorf("%d revoked events, want %d", len(evs), len(jtis))
		}
		return nil
	})
	for _, b := range bases {
		if r := call(t, b, "search", "t-idle", alice); r.status != 403 || errorCode(r) != "task_ended" {
			t.Errorf("%s after the idle end: %d %v", b, r.status, r.body)
		}
	}
	if evs := h.revokedEvents(t, "t-idle"); len(evs) != len(jtis) {
		t.Errorf("%d revoked events after every sweep ran, want %d (once each)", len(evs), len(jtis))
	}
}

// At its declared deadline a task ends, and with it the credentials
// minted under it, which never outlive it.
func TestTaskDeadlineEndsTask(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t), func(h *harness, c *enforcer.Config) {
		c.Tasks = task.Config{SweepInterval: 50 * time.Millisecond}
	})
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-d","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"],"duration":"2s"}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	r := call(t, h.url, "search", "t-d", alice)
	if r.status != 200 {
		t.Fatalf("call: %d %v", r.status, r.body)
	}
	c := h.events(t, r.requestID, event.KindCredential)[event.KindCredential]
	poll.Until(t, 30*time.Second, func() error {
		v, err := revocation(t, h, stream.TaskRevocationKey("acme", "t-d"))
		if err == nil && v.Reason != task.EndDeadline {
			return fmt.Errorf("revoked for %q", v.Reason)
		}
		return err
	})
	if r := call(t, h.url, "search", "t-d", alice); r.status != 403 || errorCode(r) != "task_ended" {
		t.Errorf("after the deadline: %d %v", r.status, r.body)
	}
	v, err := revocation(t, h, stream.JTIRevocationKey(c.Credential.JTI))
	if err != nil || v.Reason != task.EndDeadline {
		t.Errorf("credential revocation %+v %v", v, err)
	}
	if c.Credential.Expires.After(v.RevokedAt.Add(time.Second)) {
		t.Errorf("the credential expires %s, after its task's deadline (ended %s)", c.Credential.Expires, v.RevokedAt)
	}
}

// Calls in flight while their task is completed, over three instances:
// every call that started after the completion returned is refused, none
// reaches the backend.
func TestTaskEndRace(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	bases := []string{h.url, h.another(t, "enf-b", nil), h.another(t, "enf-c", nil)}
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-race","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	type result struct {
		start  time.Time
		status int
		code   string
	}
	var (
		mu       sync.Mutex
		results  []result
		returned atomic.Pointer[time.Time]
		total    atomic.Int64
		// sinceEnd counts calls started after the completion returned:
		// the load goes on until there are enough of them, however long
		// the completion itself took (a count of all calls would be
		// reached during a slow completion, leaving the race untested).
		sinceEnd atomic.Int64
	)
	const before, after = 200, 300
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if returned.Load() != nil && sinceEnd.Load() >= after {
					return
				}
				start := time.Now()
				r := call(t, bases[(w+i)%3], "search", "t-race", alice)
				total.Add(1)
				if end := returned.Load(); end != nil && start.After(*end) {
					sinceEnd.Add(1)
				}
				mu.Lock()
				results = append(results, result{start, r.status, errorCode(r)})
				mu.Unlock()
			}
		}()
	}
	poll.Until(t, time.Minute, func() error {
		if n := total.Load(); n < before {
			return fmt.Errorf("%d calls so far", n)
		}
		return nil
	})
	if r := completeTask(t, h.url, "t-race", alice); r.status != 200 {
		t.Fatalf("complete: %d %v", r.status, r.body)
	}
	end := time.Now()
	returned.Store(&end)
	wg.Wait()
	var later, through int
	for _, r := range results {
		if !r.start.After(end) {
			continue
		}
		later++
		if r.status != 403 || r.code != "task_ended" {
			through++
			t.Errorf("a call started %s after the completion returned: %d %s", r.start.Sub(end), r.status, r.code)
		}
	}
	t.Logf("%d calls, %d started after the completion returned, %d of them got through", len(results), later, through)
	if later < 100 {
		t.Fatalf("only %d calls started after the completion: the race was not exercised", later)
	}
	forwarded := 0
	for _, r := range results {
		if r.status == 200 {
			forwarded++
		}
	}
	if h.hits.Load() != int64(forwarded) {
		t.Errorf("backend saw %d calls, %d were answered allowed", h.hits.Load(), forwarded)
	}
}

// cutProxy is a loopback TCP proxy to NATS that a test can cut, as a
// network partition of one instance.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	p := &cutProxy{ln: listen(t), target: target}
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { p.ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// A revocation written while an instance is cut off from NATS, and NATS
// then restarted, still reaches that instance; while its view is stale
// it mints and reuses nothing.
func TestRevocationReachesEnforcerAfterNATSRestart(t *testing.T) {
	h := newHarness(t, 2*time.Second, withCredentials(t))
	proxy := newCutProxy(t, strings.TrimPrefix(h.nats.URL(), "nats://"))
	b, enfB := h.anotherEnforcer(t, "enf-b", func(c *enforcer.Config) {
		credentialsConfig(t, h, c)
		c.NATS.URL = stream.URLs(proxy.url())
		// Spooling, the cut-off instance still records and answers: what
		// refuses its credentials is the stale view, not the record.
		c.NATS.OnUnavailable, c.NATS.Spool = audit.Spool, spool.Config{Dir: t.TempDir()}
		c.Revocations = credential.WatchConfig{MaxStaleness: 500 * time.Millisecond}
	})
	alice := bearer(h.token(t))
	if r := declareTask(t, h.url, `{"id":"t-n","tools":["search"],"destinations":["unknown","tools"],"data_classes":["unclassified","internal"]}`, alice); r.status != 201 {
		t.Fatalf("declare: %d %v", r.status, r.body)
	}
	r := call(t, b, "search", "t-n", alice)
	if r.status != 200 {
		t.Fatalf("call at b: %d %v", r.status, r.body)
	}
	jti := h.events(t, r.requestID, event.KindDecision)[event.KindDecision].Decision.CredentialJTI
	proxy.setCut(true)
	if r := completeTask(t, h.url, "t-n", alice); r.status != 200 {
		t.Fatalf("complete: %d %v", r.status, r.body)
	}
	// Within max_staleness the instance may still mint (the bound);
	// past it, nothing.
	poll.Until(t, 20*time.Second, func() error {
		// No task: only the credential's freshness is in question.
		r := send(t, "POST", b, "/mcp", toolCall("search", `{}`), alice)
		if r.status != 503 || errorCode(r) != "revocations_stale" {
			return fmt.Errorf("while cut off: %d %v", r.status, r.body)
		}
		return nil
	})
	hits := h.hits.Load()
	for i := range 20 {
		r := send(t, "POST", b, "/mcp", toolCall("search", `{}`), withHeader(alice, "Agent-Task-Id", fmt.Sprintf("t-new-%d", i)))
		if r.status != 503 {
			t.Errorf("stale, call %d: %d %v", i, r.status, r.body)
		}
	}
	if n := h.hits.Load(); n != hits {
		t.Fatalf("%d calls reached the backend from the stale instance", n-hits)
	}
	h.nats.Restart()
	proxy.setCut(false)
	poll.Until(t, 30*time.Second, func() error {
		r := call(t, b, "search", "t-n", alice)
		if r.status != 403 || errorCode(r) != "task_ended" {
			return fmt.Errorf("after the restart: %d %v", r.status, r.body)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, func() error {
		if r := send(t, "POST", b, "/mcp", toolCall("search", `{}`), alice); r.status != 200 {
			return fmt.Errorf("a call without a task after the restart: %d %v", r.status, r.body)
		}
		return nil
	})
	if !enforcer.CredentialRevoked(enfB, jti) {
		t.Errorf("instance b does not know credential %s is revoked", jti)
	}
}

// A bearer token whose jti is revoked (a task credential presented back,
// or revoked by any instance) is refused wherever it is shown.
func TestRevokedJTIRefused(t *testing.T) {
	var e *enforcer.Enforcer
	h := newHarness(t, 2*time.Second, func(h *harness, _ *enforcer.Config) { h.onServe = func(x *enforcer.Enforcer) { e = x } })
	revoked := h.tokenWith(t, func(c map[string]any) { c["jti"] = "jti-revoked" })
	other := h.tokenWith(t, func(c map[string]any) { c["jti"] = "jti-live" })
	kv, err := h.nats.JetStream().KeyValue(context.Background(), stream.Revocations)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(stream.Revocation{Tenant: "acme", TaskID: "t-x", JTI: "jti-revoked", Reason: "revoked", RevokedAt: time.Now(), Until: time.Now().Add(time.Hour)})
	if _, err := kv.Put(context.Background(), stream.JTIRevocationKey("jti-revoked"), v); err != nil {
		t.Fatal(err)
	}
	// Once the instance's view holds the record (a call sent before
	// would be decided on the view without it), the token is refused.
	poll.Until(t, 10*time.Second, func() error {
		if !enforcer.CredentialRevoked(e, "jti-revoked") {
			return fmt.Errorf("the revocation has not reached the instance's view")
		}
		return nil
	})
	if r := send(t, "POST", h.url, "/mcp", toolCall("search", `{}`), bearer(revoked)); r.status != 401 || errorCode(r) != "token_revoked" {
		t.Fatalf("revoked jti: %d %v", r.status, r.body)
	}
	if r := send(t, "POST", h.url, "/mcp", toolCall("search", `{}`), bearer(other)); r.status != 200 {
		t.Errorf("another jti: %d %v", r.status, r.body)
	}
	if n := h.hits.Load(); n != 1 {
		t.Errorf("%d calls reached the backend, want the live token's one", n)
	}
}

// A client sending a fresh task id per call starts at most
// max_per_tenant tasks: the shared bucket and every instance's copy stay
// bounded, and another tenant's tasks are untouched by the flood.
func TestTaskFloodBounded(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) { c.Tasks = task.Config{MaxPerTenant: 5} })
	alice := bearer(h.token(t))
	globex := bearer(h.tokenWith(t, func(c map[string]any) { c["tenant"] = "globex" }))
	codes := map[string]int{}
	for i := range 12 {
		r := call(t, h.url, "search", fmt.Sprintf("flood-%d", i), alice)
		codes[fmt.Sprintf("%d %s", r.status, errorCode(r))]++
	}
	if codes["200 "] != 5 || codes["503 task_table_full"] != 7 {
		t.Fatalf("flood: %v, want 5 started and 7 refused task_table_full", codes)
	}
	if r := declareTask(t, h.url, `{"id":"flood-decl","tools":["search"]}`, alice); r.status != 503 || errorCode(r) != "task_table_full" {
		t.Errorf("a declaration past the bound: %d %v", r.status, r.body)
	}
	if r := call(t, h.url, "search", "flood-1", alice); r.status != 200 {
		t.Errorf("a started task still works: %d %v", r.status, r.body)
	}
	if r := declareTask(t, h.url, `{"id":"flood-1","tools":["search"]}`, globex); r.status != 201 {
		t.Errorf("another tenant's declaration: %d %v", r.status, r.body)
	}
}

// With NATS unreachable and nats.on_unavailable: spool, a call under an
// undeclared task is decided on the instance's own view and spooled; one
// under a budgeted task is refused (its budget cannot be counted), and
// one under a task the instance saw end is refused as ended.
func TestTaskCallsWhileNATSDownWithSpool(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond, func(h *harness, c *enforcer.Config) {
		c.NATS.OnUnavailable, c.NATS.Spool = audit.Spool, spool.Config{Dir: t.TempDir()}
	})
	alice := bearer(h.token(t))
	for _, r := range []reply{
		call(t, h.url, "search", "t-open", alice),
		declareTask(t, h.url, `{"id":"t-budget","tools":["search"],"destinations":["unknown"],"data_classes":["unclassified"],"max_calls":5}`, alice),
		call(t, h.url, "search", "t-budget", alice),
		call(t, h.url, "search", "t-done", alice),
		completeTask(t, h.url, "t-done", alice),
	} {
		if r.status/100 != 2 {
			t.Fatalf("before the outage: %d %v", r.status, r.body)
		}
	}
	h.nats.Shutdown()
	if r := call(t, h.url, "search", "t-open", alice); r.status != 200 {
		t.Errorf("undeclared task while NATS is down: %d %v", r.status, r.body)
	}
	if r := call(t, h.url, "search", "t-budget", alice); r.status != 503 || errorCode(r) != "task_unavailable" {
		t.Errorf("budgeted task while NATS is down: %d %v", r.status, r.body)
	}
	if r := call(t, h.url, "search", "t-done", alice); r.status != 403 || errorCode(r) != "task_ended" {
		t.Errorf("ended task while NATS is down: %d %v", r.status, r.body)
	}
}
