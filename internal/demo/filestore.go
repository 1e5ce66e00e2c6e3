package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/backend"
	"github.com/rampart-io/rampart/schema/stream"
)

// BypassAlert is the rule the simulated bypass must raise in acme.
const BypassAlert = "backend-bypass"

// fileStore is the demo's tool backend: read_file calls are the file
// store's, behind Rampart's backend middleware, which verifies the task
// credential the enforcer put on them and reports each call; the other
// tools answer as before, with the caller's own token.
type fileStore struct {
	tools http.Handler
	gate  atomic.Pointer[http.Handler] // the middleware around tools, once the pipeline runs
}

func (f *fileStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var call struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &call) != nil || call.Method != "tools/call" || call.Params.Name != "read_file" {
		f.tools.ServeHTTP(w, r)
		return
	}
	gate := f.gate.Load()
	if gate == nil {
		http.Error(w, "file store not ready", http.StatusServiceUnavailable)
		return
	}
	(*gate).ServeHTTP(w, r)
}

// startFileStore puts the middleware in front of the file store: it
// trusts the credentials the demo's enforcer at enforcerAddr mints, and
// watches revocations and reports over natsURL. stop closes it once its
// reports are made.
func (f *fileStore) start(ctx context.Context, natsURL, enforcerAddr string, log *slog.Logger) (stop func(), err error) {
	nc, err := nats.Connect(natsURL, nats.Name("rampart-demo-file-store"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// The revocations bucket, as every enforcer and backend shares it.
	if _, err := js.CreateOrUpdateKeyValue(ctx, stream.RevocationsConfig(stream.Defaults(), 2*time.Hour)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("demo: revocations bucket: %w", err)
	}
	v, err := backend.New(backend.Config{Issuer: CredentialIssuer, Audience: CredentialAudience,
		JWKSURL: "http://" + enforcerAddr + "/.well-known/jwks.json"}, backend.WithJetStream(js), backend.WithLogger(log))
	if err != nil {
		nc.Close()
		return nil, err
	}
	stop = func() {
		deadline := time.Now().Add(5 * time.Second)
		for v.Stats().Pending > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		_ = v.Close()
		nc.Close()
	}
	for !v.RevocationsReady() {
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	h := v.Wrap(f.tools)
	f.gate.Store(&h)
	return stop, nil
}

// Bypass is the demo's simulated bypass: a credential the file store was
// handed on a forwarded call, replayed straight to the file store, past
// the enforcer, and what the file store answered. The credential is
// valid, so the call is served; the correlator's backend-bypass rule
// finds that no enforcer allowed it.
type Bypass struct {
	// Of is the request id of the forwarded call whose credential was
	// replayed.
	Of     string
	Status int
	Code   string
}

// bypass replays the credential of the forwarded read_file call of
// request id of, taken from the file store's own log, to backendURL.
func bypass(ctx context.Context, backendURL, of, authorization string) (Bypass, error) {
	b := Bypass{Of: of}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/finance/q3.xlsx"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, backendURL+"/mcp", strings.NewReader(body))
	if err != nil {
		return b, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return b, fmt.Errorf("demo: bypass: %w", err)
	}
	defer resp.Body.Close()
	b.Status = resp.StatusCode
	var refusal struct {
		Code string `json:"code"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&refusal)
	}
	b.Code = refusal.Code
	return b, nil
}
