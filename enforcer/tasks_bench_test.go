package enforcer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/rampart-io/rampart/schema/stream"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// BenchmarkTaskDecisionPath is the decision path of BenchmarkDecisionPath
// (no schema) with what tasks add: no task id (the baseline), an id of
// an undeclared task (the lookups miss), a declared task (the lookups
// hit and policy gets task.*), and the same with the allowed call charged
// to the task's shared record (one revision-checked JetStream update).
// go test -run '^$' -bench TaskDecisionPath -benchmem ./enforcer/
func BenchmarkTaskDecisionPath(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue","size":10,"filters":{"team":"finance"}}}}`)
	for _, mode := range []string{"none", "undeclared", "declared", "declared+charge"} {
		b.Run("task="+mode, func(b *testing.B) {
			e, token := testEnforcer(b, false, "http://127.0.0.1:1")
			header := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
			if mode != "none" {
				header.Set("Agent-Task-Id", "t-1")
			}
			ctx := context.Background()
			if strings.HasPrefix(mode, "declared") {
				now := time.Now()
				r := &task.Record{Tenant: "acme", ID: "t-1", Declared: true, Issuer: "https://idp.bench", Subject: "user:alice",
					Tools: []string{"search"}, Destinations: []string{"unknown"}, DataClasses: []string{"unclassified"},
					Started: now, Deadline: now.Add(time.Hour), LastActive: now}
				if err := e.tasks.Declare(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				v := e.evaluate(ctx, &check{method: "POST", host: "mcp.internal", path: "/mcp", rawPath: "/mcp", header: header, body: bytes.NewReader(body)})
				if v.code != "" || v.policy.RuleID != "last" {
					b.Fatalf("verdict %+v %v", v.policy, v.cause)
				}
				if mode == "declared" && v.x.task == nil {
					b.Fatal("the declared task was not found")
				}
				if mode == "declared+charge" {
					if _, err := e.chargeTask(ctx, v.x, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// fleet is n enforcers on one JetStream, accepting one issuer's tokens,
// serving on loopback until the benchmark ends.
type fleet struct {
	enforcers []*Enforcer
	urls      []string
	token     string
	client    *http.Client
}

const fleetPolicy = `id: fleet
rules:
  - id: task-api
    match: 'path.startsWith("/_rampart/tasks") && tenant == "acme"'
    effect: allow
  - id: outside-task
    match: 'task.declared && !within_task_scope()'
    effect: deny
  - id: search
    match: 'tool == "search" && tenant == "acme"'
    effect: allow
`

func newFleet(b *testing.B, n int) *fleet {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	dir := b.TempDir()
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := jwk.FromRaw(raw)
	_ = key.Set(jwk.KeyIDKey, "k1")
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	_ = os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(fleetPolicy), 0o600)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`)
	}))
	b.Cleanup(backend.Close)
	ns := natstest.Run(b)
	f := &fleet{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for i := range n {
		cfg := Config{
			Upstream: backend.URL, Instance: fmt.Sprintf("fleet-%d", i), PolicyFile: filepath.Join(dir, "policy.yaml"),
			Identity: identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: "https://idp.bench", Audience: "rampart", JWKSFile: filepath.Join(dir, "jwks.json")}},
			NATS:     audit.Config{URL: stream.URLs(ns.URL()), Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}},
		}
		e, err := New(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Serve(ctx, Listeners{HTTP: ln}) }()
		b.Cleanup(func() { cancel(); <-done; e.Close() })
		f.enforcers = append(f.enforcers, e)
		f.urls = append(f.urls, "http://"+ln.Addr().String())
	}
	claims, _ := json.Marshal(map[string]any{"iss": "https://idp.bench", "aud": "rampart", "sub": "user:alice", "tenant": "acme",
		"exp": time.Now().Add(time.Hour).Unix(), "act": map[string]any{"sub": "agent:planner"}})
	tok, err := jws.Sign(claims, jws.WithKey(jwa.ES256, key))
	if err != nil {
		b.Fatal(err)
	}
	f.token = string(tok)
	return f
}

// do sends a POST to enforcer i and returns the status and the code.
func (f *fleet) do(i int, path, taskID, body string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, f.urls[i]+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	if taskID != "" {
		req.Header.Set("Agent-Task-Id", taskID)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		Error struct {
			Code any `json:"code"`
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	code, _ := out.Error.Code.(string)
	if code == "" {
		code = out.Error.Data.Code
	}
	return resp.StatusCode, code, nil
}

const searchCall = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{}}}`

// BenchmarkRevocationPropagation ends one task per iteration at the
// first of three enforcers while four clients keep calling under tasks
// of their own at all three, and measures, from the completion's answer,
// how long each instance takes (view) to hold the task's revocation in
// its watched view, and (refusal) to answer a call under it task_ended.
// go test -run '^$' -bench RevocationPropagation -benchtime 1000x ./enforcer/
func BenchmarkRevocationPropagation(b *testing.B) {
	f := newFleet(b, 3)
	stop := make(chan struct{})
	var load atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if st, _, err := f.do((w+i)%3, "/mcp", fmt.Sprintf("load-%d", w), searchCall); err == nil && st == 200 {
					load.Add(1)
				}
			}
		}()
	}
	var view, refusal []time.Duration
	var mu sync.Mutex
	began := time.Now()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("p-%d", i)
		decl := `{"id":"` + id + `","tools":["search"],"destinations":["unknown"],"data_classes":["unclassified"]}`
		if st, code, err := f.do(0, "/_rampart/tasks", "", decl); st != 201 {
			b.Fatalf("declare: %d %s %v", st, code, err)
		}
		for k := range 3 {
			if st, code, err := f.do(k, "/mcp", id, searchCall); st != 200 {
				b.Fatalf("call at %d: %d %s %v", k, st, code, err)
			}
		}
		if st, code, err := f.do(0, "/_rampart/tasks/"+id+"/complete", "", ""); st != 200 {
			b.Fatalf("complete: %d %s %v", st, code, err)
		}
		t0 := time.Now()
		var round sync.WaitGroup
		for k := range 3 {
			round.Add(2)
			go func() {
				defer round.Done()
				for !f.enforcers[k].revocations.TaskEnded("acme", id) {
					time.Sleep(20 * time.Microsecond)
				}
				d := time.Since(t0)
				mu.Lock()
				view = append(view, d)
				mu.Unlock()
			}()
			go func() {
				defer round.Done()
				st, code, err := f.do(k, "/mcp", id, searchCall)
				d := time.Since(t0)
				if st != 403 || code != "task_ended" {
					b.Errorf("call at %d after the end: %d %s %v", k, st, code, err)
				}
				mu.Lock()
				refusal = append(refusal, d)
				mu.Unlock()
			}()
		}
		round.Wait()
	}
	elapsed := time.Since(began)
	close(stop)
	wg.Wait()
	pct := func(ds []time.Duration, p float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(view, 0.50), "view-p50-ms")
	b.ReportMetric(pct(view, 0.99), "view-p99-ms")
	b.ReportMetric(pct(refusal, 0.50), "refusal-p50-ms")
	b.ReportMetric(pct(refusal, 0.99), "refusal-p99-ms")
	b.ReportMetric(float64(load.Load())/elapsed.Seconds(), "load-calls/s")
}
