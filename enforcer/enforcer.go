// Package enforcer is Rampart's boundary between AI agents and the tools
// they call: a reverse proxy that identifies the caller (identity), reads
// the tool call (mcp), decides on it (policy), records request and decision
// in JetStream (audit) — and forwards the request only when the decision is
// allow and the record is acknowledged. The backend's answer is recorded
// after it is sent.
package enforcer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

// Headers the enforcer sets on forwarded requests. Any X-Rampart-* header
// from the client is removed first, so the backend can trust these.
const (
	HeaderRequestID = "X-Rampart-Request-Id"
	HeaderTenant    = "X-Rampart-Tenant"
	HeaderSubject   = "X-Rampart-Subject"
	headerPrefix    = "X-Rampart-"
)

// startTimeout bounds fetching the JWKS and ensuring the streams in New.
const startTimeout = 30 * time.Second

// Enforcer is a configured enforcer. Create it with New, serve it with Run
// (or mount Handler), and Close it.
type Enforcer struct {
	cfg      Config
	log      *slog.Logger
	verifier *identity.Verifier
	policy   *policy.Policy
	audit    *audit.Publisher
	proxy    *httputil.ReverseProxy
	ids      event.IDSource // request ids
}

// New builds an enforcer from a defaulted and validated cfg: it loads the
// policy and the key set and connects to JetStream. Any failure is fatal;
// an enforcer never starts without its record.
func New(cfg Config) (*Enforcer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	e := &Enforcer{cfg: cfg, log: slog.Default().With("component", "enforcer", "instance", cfg.Instance)}
	var err error
	if e.policy, err = policy.Load(cfg.PolicyFile); err != nil {
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	if e.verifier, err = identity.New(ctx, cfg.Identity); err != nil {
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	if e.audit, err = audit.Connect(ctx, cfg.Instance, cfg.NATS, e.log); err != nil {
		e.verifier.Close()
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	upstream, _ := url.Parse(cfg.Upstream) // checked by Validate
	e.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			e.log.Warn("upstream failed", "err", err, "request_id", r.Header.Get(HeaderRequestID))
			writeError(w, CodeUpstreamUnavailable, r.Header.Get(HeaderRequestID), "", nil)
		},
	}
	e.log.Info("enforcer ready", "policy", e.policy.ID(), "policy_hash", e.policy.Hash(), "upstream", cfg.Upstream)
	return e, nil
}

// Handler returns the enforcing reverse proxy.
func (e *Enforcer) Handler() http.Handler { return http.HandlerFunc(e.serve) }

// Run serves on the configured address until ctx ends, then shuts down
// gracefully, letting requests in flight finish (and be recorded).
func (e *Enforcer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("enforcer: %w", err)
	}
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	e.log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("enforcer: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed once Serve has returned
	if err != nil {
		return fmt.Errorf("enforcer: shutdown: %w", err)
	}
	return nil
}

// Close releases the JetStream connection and the JWKS refresh.
func (e *Enforcer) Close() {
	e.audit.Close()
	e.verifier.Close()
}

// exchange is the record of one request while it is handled.
type exchange struct {
	id      string
	start   time.Time
	trace   event.Trace
	ident   *identity.Identity // nil until verified
	request *event.Request
}

func (x *exchange) tenant() string {
	if x.ident == nil {
		return ""
	}
	return x.ident.Tenant
}

func (x *exchange) identity() *event.Identity {
	if x.ident == nil {
		return nil
	}
	return &x.ident.Identity
}

// serve is the one decision path: identify, read, decide, record, then
// answer or forward. Every outcome is recorded before the client hears it.
func (e *Enforcer) serve(w http.ResponseWriter, r *http.Request) {
	x := &exchange{
		start:   time.Now(),
		trace:   event.Trace{TraceParent: r.Header.Get("Traceparent"), TraceState: r.Header.Get("Tracestate")},
		request: &event.Request{Method: r.Method, Host: r.Host, Path: r.URL.Path},
	}
	x.id = e.ids.New(x.start)
	w.Header().Set(HeaderRequestID, x.id)

	// Identity first: it needs no body, and it makes every later refusal
	// attributable to a caller.
	ident, err := e.verifier.Verify(r)
	if err != nil {
		e.refuse(w, r, x, Code(identity.CodeOf(err)), err, nil)
		return
	}
	x.ident = ident

	body, err := mcp.ReadBody(r.Body, e.cfg.MaxBodyBytes)
	switch {
	case errors.Is(err, mcp.ErrTooLarge):
		e.refuse(w, r, x, CodeBodyTooLarge, err, nil)
		return
	case err != nil:
		e.refuse(w, r, x, CodeBodyUnreadable, err, nil)
		return
	}
	x.request.BodyBytes = int64(len(body))

	call, err := mcp.Parse(r.Method, body)
	var args map[string]any
	if err == nil {
		args, err = call.Arguments()
	}
	if err != nil {
		var rpcErr *mcp.Error
		if !errors.As(err, &rpcErr) {
			rpcErr = &mcp.Error{Code: mcp.CodeInvalidParams, Message: "invalid params", ID: call.ID}
		}
		e.refuse(w, r, x, rpcCode(rpcErr.Code), err, rpcErr)
		return
	}
	x.request.RPCMethod, x.request.Tool, x.request.ArgsDigest = call.Method, call.Tool, call.ArgsDigest

	d := e.policy.Decide(r.Context(), e.input(x, args))
	if err := e.record(r.Context(), x, d.Event()); err != nil {
		e.unavailable(w, x, err)
		return
	}
	if d.Effect != event.EffectAllow {
		writeError(w, CodePolicyDenied, x.id, d.Reason, func(b *apiError) {
			b.Error.RuleID, b.Error.PolicyID = d.RuleID, d.PolicyID
		})
		return
	}
	e.forward(w, r, x, body)
}

// input is what the policy sees of an exchange.
func (e *Enforcer) input(x *exchange, args map[string]any) *policy.Input {
	id := x.ident
	chain := make([]string, len(id.Chain))
	for i, a := range id.Chain {
		chain[i] = a.Subject
	}
	return &policy.Input{
		Tenant: id.Tenant, Subject: id.Subject, Actor: id.CurrentActor(), Chain: chain,
		SPIFFEID: id.SPIFFEID, Session: id.SessionID, Task: id.TaskID,
		Method: x.request.Method, Host: x.request.Host, Path: x.request.Path,
		RPCMethod: x.request.RPCMethod, Tool: x.request.Tool, Args: args,
	}
}

// record publishes the request and decision events of x and waits for
// their acknowledgement.
func (e *Enforcer) record(ctx context.Context, x *exchange, d *event.Decision) error {
	// Every event of an exchange repeats the request's summary, so each row
	// in ClickHouse says on its own what was asked.
	base := event.Event{Time: x.start.UTC(), Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(), Request: x.request}
	req, dec := base, base
	req.Kind = event.KindRequest
	dec.Kind, dec.Decision = event.KindDecision, d
	dec.Time = time.Now().UTC()
	return e.audit.Publish(ctx, &req, &dec)
}

// refuse records a request refused before or outside policy, then answers
// with code — or with audit_unavailable when the refusal cannot be recorded.
// rpcErr, when set, is answered as a JSON-RPC error response.
func (e *Enforcer) refuse(w http.ResponseWriter, r *http.Request, x *exchange, code Code, cause error, rpcErr *mcp.Error) {
	d := &event.Decision{
		Effect:     event.EffectDeny,
		PolicyID:   e.policy.ID(),
		PolicyHash: e.policy.Hash(),
		Code:       string(code),
		Reason:     cause.Error(),
	}
	if err := e.record(r.Context(), x, d); err != nil {
		e.unavailable(w, x, err)
		return
	}
	if rpcErr != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code.Status())
		_, _ = w.Write(rpcErr.Response(map[string]string{"code": string(code), "request_id": x.id}))
		return
	}
	writeError(w, code, x.id, "", nil)
}

func (e *Enforcer) unavailable(w http.ResponseWriter, x *exchange, err error) {
	e.log.Error("request refused: events not recorded", "request_id", x.id, "err", err)
	writeError(w, CodeAuditUnavailable, x.id, "", nil)
}

// rpcCode maps a JSON-RPC error code to the API code.
func rpcCode(c int) Code {
	switch c {
	case mcp.CodeParseError:
		return CodeRPCParseError
	case mcp.CodeInvalidRequest:
		return CodeRPCInvalidRequest
	}
	return CodeRPCInvalidParams
}

// forward sends an allowed request to the upstream and records its answer.
func (e *Enforcer) forward(w http.ResponseWriter, r *http.Request, x *exchange, body []byte) {
	for k := range r.Header {
		if strings.HasPrefix(k, headerPrefix) {
			delete(r.Header, k)
		}
	}
	r.Header.Set(HeaderRequestID, x.id)
	r.Header.Set(HeaderTenant, x.ident.Tenant)
	r.Header.Set(HeaderSubject, x.ident.Subject)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil

	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	e.proxy.ServeHTTP(rec, r)
	resp := event.Event{
		Kind: event.KindResponse, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(),
		Request: x.request, Response: &event.Response{Status: rec.status, DurationNs: time.Since(start).Nanoseconds(), Bytes: rec.bytes},
	}
	// Best effort: the answer is already on its way, and a client that has
	// gone must not cancel the record of what it was sent.
	if err := e.audit.Publish(context.WithoutCancel(r.Context()), &resp); err != nil {
		e.log.Warn("response event not recorded", "request_id", x.id, "err", err)
	}
}

// recorder notes the status and size of a response as it passes.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	written bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.written && status >= 200 { // 1xx (103 Early Hints) precede the real status
		r.status, r.written = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.written = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush on the real writer, which
// streamed (SSE) MCP responses need.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
