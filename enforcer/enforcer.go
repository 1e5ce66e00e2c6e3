// Package enforcer is Rampart's boundary between AI agents and the tools
// they call. It identifies the caller (identity), reads the tool call (mcp),
// decides on it (policy) and records request and decision in JetStream
// (audit) — one decision path, served in several modes: as a reverse proxy
// that forwards allowed requests itself, as a forward-auth endpoint for
// nginx or Caddy, and as Envoy's ext_authz service (package extauthz). In
// every mode a request is let through only when the decision is allow and
// its record is acknowledged, and every mode records the same events.
package enforcer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/binding"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/enforcer/extauthz"
	"github.com/rampart-io/rampart/enforcer/framing"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/enforcer/toolschema"
	"github.com/rampart-io/rampart/schema/event"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Headers the enforcer sets on allowed requests (proxy mode) or returns
// for the gateway to set (forward-auth, ext_authz). Any X-Rampart-* header
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
// (or Serve, on listeners of your own), and Close it.
type Enforcer struct {
	cfg          Config
	log          *slog.Logger
	verifier     *identity.Verifier
	policy       *policy.Watcher
	stopWatch    context.CancelFunc
	budgetReg    metric.Registration // the budgets' metrics; nil when not registered
	schemas      *toolschema.Registry
	dests        *destination.Map
	inflight     chan struct{}     // one slot per request being handled
	responses    chan *event.Event // response events on their way to the record
	closing      chan struct{}     // closed by Close: no more queueing
	responded    chan struct{}     // closed when the response recorder has drained
	audit        *audit.Publisher
	proxy        *httputil.ReverseProxy // nil unless proxy mode
	ids          event.IDSource         // request ids
	proxies      []netip.Prefix         // trusted_proxies
	forwarders   []netip.Prefix         // forwarded_for
	upstreamHost string                 // proxy mode: the host every request goes to
	tls          *tls.Config            // nil unless tls is configured
	authzHTTP    http.Handler           // nil unless ext_authz_http mode
	bindings     *binding.Table         // client session and task ids, bound to their holders
	// serverRequests are the requests backends streamed to clients,
	// awaiting their answers; a table of their own, so that piling them
	// up evicts no session binding.
	serverRequests *binding.Table
	// gatewaySecret is the SHA-256 of forward_auth's secret;
	// extAuthzSecret of ext_authz's, nil when it has none.
	gatewaySecret  [32]byte
	extAuthzSecret *[32]byte
}

// New builds an enforcer from cfg, which it defaults and validates: it
// loads the policy, the key set and the TLS material, and connects to
// JetStream. Any failure is fatal; an enforcer never starts without its
// record.
func New(cfg Config) (*Enforcer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	e := &Enforcer{cfg: cfg, log: slog.Default().With("component", "enforcer", "instance", cfg.Instance)}
	e.proxies, _ = parsePrefixes(cfg.TrustedProxies) // checked by Validate
	e.forwarders, _ = parsePrefixes(cfg.ForwardedFor)
	if u, err := url.Parse(cfg.Upstream); err == nil {
		e.upstreamHost = u.Host
	}
	var err error
	if cfg.TLS.Enabled() {
		if e.tls, err = loadTLS(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if cfg.Enabled(ModeForwardAuth) {
		if e.gatewaySecret, err = loadGatewaySecret("forward_auth.secret_file", cfg.ForwardAuth.SecretFile); err != nil {
			return nil, err
		}
	}
	if cfg.ExtAuthz.SecretFile != "" {
		secret, err := loadGatewaySecret("ext_authz.secret_file", cfg.ExtAuthz.SecretFile)
		if err != nil {
			return nil, err
		}
		e.extAuthzSecret = &secret
	} else if cfg.Enabled(ModeExtAuthzGRPC) || cfg.Enabled(ModeExtAuthzHTTP) {
		e.log.Warn("ext_authz checks are believed by address only (trusted_proxies): set ext_authz.secret_file")
	}
	budgets := policy.NewBudgets(cfg.Budgets)
	if e.policy, err = policy.NewWatcher(policy.WatchConfig{Path: cfg.PolicyFile, Interval: cfg.PolicyReloadInterval, OnReload: e.policyChanged, Budgets: budgets}); err != nil {
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	if e.schemas, err = toolschema.New(cfg.ToolSchemas); err != nil {
		return nil, fmt.Errorf("enforcer: tool_schemas: %w", err)
	}
	if e.dests, err = destination.New(cfg.Destinations); err != nil {
		return nil, fmt.Errorf("enforcer: destinations: %w", err)
	}
	if e.verifier, err = identity.New(ctx, cfg.Identity); err != nil {
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	if e.audit, err = audit.Connect(ctx, cfg.Instance, cfg.NATS, e.log); err != nil {
		e.verifier.Close()
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	e.bindings = binding.New(cfg.SessionBindings)
	e.serverRequests = binding.New(binding.Config{MaxPerPrincipal: 256, IdleTimeout: 10 * time.Minute})
	if e.budgetReg, err = budgets.Instrument(otel.GetMeterProvider()); err != nil {
		e.log.Warn("budget metrics not registered", "err", err) // the budgets still hold
	}
	e.inflight = make(chan struct{}, cfg.MaxInFlight)
	e.responses, e.closing, e.responded = make(chan *event.Event, responseQueue), make(chan struct{}), make(chan struct{})
	go e.recordResponses()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	e.stopWatch = stopWatch
	go func() { _ = e.policy.Run(watchCtx) }()
	if cfg.Enabled(ModeProxy) {
		e.proxy = e.newProxy()
	}
	if cfg.Enabled(ModeExtAuthzHTTP) {
		e.authzHTTP = extauthz.HTTPHandler(authorizer{e}, cfg.ExtAuthz.HTTPPathPrefix, cfg.MaxBodyBytes)
	}
	e.log.Info("enforcer ready", "modes", cfg.Modes, "policy", e.policy.Policy().ID(), "policy_hash", e.policy.Policy().Hash(), "upstream", cfg.Upstream)
	return e, nil
}

func loadTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("enforcer: tls: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("enforcer: tls: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("enforcer: tls: no certificates in %s", c.ClientCAFile)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

func (e *Enforcer) newProxy() *httputil.ReverseProxy {
	upstream, _ := url.Parse(e.cfg.Upstream) // checked by Validate
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep connections to the one backend warm under concurrency (the
	// default keeps 2 idle per host and churns the rest).
	transport.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: copyBuffers{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			// X-Forwarded-For from a trusted gateway is extended; from
			// anyone else it is dropped (forward did) and starts afresh.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		// A session the backend issues is bound to the caller before the
		// answer leaves, so nobody can present it first.
		ModifyResponse: func(resp *http.Response) error {
			if x, ok := resp.Request.Context().Value(exchangeKey{}).(*exchange); ok && !e.issueSession(x, resp) {
				return errSessionHeld
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errSessionHeld) {
				if rec, ok := w.(*recorder); ok {
					rec.withheld = true
				}
				e.log.Warn("answer withheld", "err", err, "request_id", r.Header.Get(HeaderRequestID))
				writeError(w, CodeSessionHeld, r.Header.Get(HeaderRequestID), "", nil)
				return
			}
			if rec, ok := w.(*recorder); ok {
				rec.unavailable = true
			}
			e.log.Warn("upstream failed", "err", err, "request_id", r.Header.Get(HeaderRequestID))
			writeError(w, CodeUpstreamUnavailable, r.Header.Get(HeaderRequestID), "", nil)
		},
	}
}

// exchangeKey carries a forwarded request's exchange to ModifyResponse.
type exchangeKey struct{}

// errSessionHeld is a backend issuing a session id another principal
// holds: its answer is not passed on.
var errSessionHeld = errors.New("the backend issued a session id another principal holds")

// errStreamRefused ends an SSE answer the enforcer cannot read as clients
// would (see sseReader.refused).
var errStreamRefused = errors.New("an SSE answer that cannot be read as clients read it")

// isEventStream reports whether h's Content-Type is an SSE stream, in any
// letter case or with parameters, as clients parse it.
func isEventStream(h http.Header) bool {
	const sse = "text/event-stream"
	ct := strings.TrimLeft(h.Get("Content-Type"), " \t")
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false // most answers: no parsing on every forwarded request
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == sse
}

// copyBuffers lends the reverse proxy its buffers for copying responses,
// which it would otherwise allocate (32 KiB) for every one.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte { return copyBufferPool.Get().(*[32 << 10]byte)[:] }
func (copyBuffers) Put(b []byte) {
	if len(b) == 32<<10 {
		copyBufferPool.Put((*[32 << 10]byte)(b))
	}
}

// Handler returns the enforcer's HTTP handler: the forward-auth endpoint,
// the ext_authz HTTP service and the reverse proxy, as enabled. Mounted on
// a server of your own it lacks what Serve adds: the HTTP/1 framing checks
// against request smuggling, TLS and the configured timeouts and limits.
func (e *Enforcer) Handler() http.Handler { return http.HandlerFunc(e.route) }

func (e *Enforcer) route(w http.ResponseWriter, r *http.Request) {
	// Past max_inflight, refuse at once rather than queue: memory stays
	// bounded and callers see 503 instead of growing latency.
	select {
	case e.inflight <- struct{}{}:
		defer func() { <-e.inflight }()
	default:
		writeError(w, CodeOverloaded, "", "", nil)
		return
	}
	p := r.URL.Path
	switch {
	case e.cfg.Enabled(ModeForwardAuth) && p == e.cfg.ForwardAuth.Path:
		e.serveForwardAuth(w, r)
	case e.authzHTTP != nil && (p == e.cfg.ExtAuthz.HTTPPathPrefix || strings.HasPrefix(p, strings.TrimSuffix(e.cfg.ExtAuthz.HTTPPathPrefix, "/")+"/")):
		e.authzHTTP.ServeHTTP(w, r)
	case e.proxy != nil:
		e.serveProxy(w, r)
	default:
		writeError(w, CodeNotFound, "", "", nil)
	}
}

// Listeners are what Serve serves on. GRPC is needed in ext_authz_grpc mode
// only. TLS, when configured, is added by Serve.
type Listeners struct {
	HTTP net.Listener
	GRPC net.Listener
}

// Run listens on the configured addresses and serves until ctx ends.
func (e *Enforcer) Run(ctx context.Context) error {
	ls, err := e.Listen()
	if err != nil {
		return err
	}
	return e.Serve(ctx, ls)
}

// Listen binds the configured addresses: listen, and ext_authz's
// grpc_listen in ext_authz_grpc mode. Serve takes them over.
func (e *Enforcer) Listen() (Listeners, error) {
	var ls Listeners
	var err error
	if ls.HTTP, err = net.Listen("tcp", e.cfg.Listen); err != nil {
		return Listeners{}, fmt.Errorf("enforcer: %w", err)
	}
	if e.cfg.Enabled(ModeExtAuthzGRPC) {
		if ls.GRPC, err = net.Listen("tcp", e.cfg.ExtAuthz.GRPCListen); err != nil {
			ls.HTTP.Close()
			return Listeners{}, fmt.Errorf("enforcer: %w", err)
		}
	}
	return ls, nil
}

// Serve serves on ls until ctx ends, then shuts down gracefully, letting
// requests in flight finish (and be recorded). It closes the listeners.
func (e *Enforcer) Serve(ctx context.Context, ls Listeners) error {
	if e.cfg.Enabled(ModeExtAuthzGRPC) && ls.GRPC == nil {
		ls.HTTP.Close()
		return errors.New("enforcer: ext_authz_grpc mode needs a gRPC listener")
	}
	srv := e.httpServer()
	fo := framing.Options{MaxHeaderBytes: e.cfg.MaxHeaderBytes, HandshakeTimeout: e.cfg.Timeouts.ReadHeader, OnRefuse: e.refused}
	var hl net.Listener = framing.Listen(ls.HTTP, fo)
	if e.tls != nil {
		hl = framing.ListenTLS(ls.HTTP, e.tls, fo)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(hl) }()
	e.log.Info("listening", "addr", ls.HTTP.Addr().String(), "tls", e.tls != nil)
	var gs *grpc.Server
	if ls.GRPC != nil {
		gs = e.grpcServer()
		go func() { errc <- gs.Serve(ls.GRPC) }()
		e.log.Info("ext_authz gRPC listening", "addr", ls.GRPC.Addr().String())
	}
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeouts.Shutdown)
	defer cancel()
	if gs != nil {
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	err := srv.Shutdown(sctx)
	if serveErr != nil {
		return fmt.Errorf("enforcer: serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("enforcer: shutdown: %w", err)
	}
	return nil
}

func (e *Enforcer) httpServer() *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(e.tls != nil)
	protos.SetUnencryptedHTTP2(e.tls == nil && e.cfg.H2C)
	t := e.cfg.Timeouts
	return &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    e.cfg.MaxHeaderBytes,
		Protocols:         &protos,
		TLSConfig:         e.tls,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
}

func (e *Enforcer) grpcServer() *grpc.Server {
	opts := []grpc.ServerOption{
		// A check carries the body (up to max_body_bytes) and the headers.
		grpc.MaxRecvMsgSize(int(e.cfg.MaxBodyBytes)*2 + e.cfg.MaxHeaderBytes + 64<<10),
		grpc.ConnectionTimeout(e.cfg.Timeouts.ReadHeader),
	}
	if e.tls != nil {
		c := e.tls.Clone()
		c.NextProtos = []string{"h2"}
		opts = append(opts, grpc.Creds(credentials.NewTLS(c)))
	}
	gs := grpc.NewServer(opts...)
	extauthz.Register(gs, authorizer{e})
	return gs
}

// Close releases the JetStream connection and the JWKS refresh.
func (e *Enforcer) Close() {
	e.stopWatch()
	close(e.closing)
	<-e.responded
	e.audit.Close()
	e.verifier.Close()
	if e.budgetReg != nil {
		_ = e.budgetReg.Unregister()
	}
}

// observeListing pins the tool schemas of a tools/list answer, JSON or an
// SSE stream of JSON-RPC messages, and records every change it brings: a
// changed schema is itself a decision input.
func (e *Enforcer) observeListing(x *exchange, rec *recorder) {
	if rec.status != http.StatusOK {
		return
	}
	answers := [][]byte{rec.kept}
	if isEventStream(rec.Header()) {
		answers = sseData(rec.kept)
	}
	var changes []toolschema.Change
	for _, a := range answers {
		c, err := e.schemas.ObservePage(a, x.listCursor)
		if err != nil {
			e.log.Warn("tools/list answer not understood", "request_id", x.id, "err", err)
			return
		}
		changes = append(changes, c...)
	}
	events := make([]*event.Event, 0, len(changes))
	for _, c := range changes {
		effect := event.EffectAllow
		if c.Pinned != c.NewHash {
			effect = event.EffectDeny // the new schema waits for an operator
		}
		reason := fmt.Sprintf("%s: %s -> %s, pinned %s (%s)", c.Kind, c.OldHash, c.NewHash, c.Pinned, c.Origin)
		if c.Invalid != "" {
			reason += "; invalid: " + c.Invalid
		}
		events = append(events, &event.Event{
			Kind: event.KindToolSchema, Tenant: x.tenant(), RequestID: x.id, Identity: x.identity(),
			Request:  &event.Request{Method: x.request.Method, Host: x.request.Host, Path: x.request.Path, RPCMethod: x.request.RPCMethod, Tool: c.Tool},
			Decision: &event.Decision{Effect: effect, Code: "schema_" + string(c.Kind), Reason: reason},
		})
	}
	if len(events) == 0 {
		return
	}
	if err := e.audit.Publish(context.Background(), events...); err != nil {
		e.log.Error("tool schema changes not recorded", "request_id", x.id, "err", err)
	}
}

// policyChanged records a policy reload, or a failed one (the last good
// policy keeps deciding), as an event: what decided changes the meaning of
// every later decision.
func (e *Enforcer) policyChanged(ev policy.ReloadEvent) {
	if e.audit == nil {
		return // the first load, during New
	}
	d := &event.Decision{Effect: event.EffectAllow, PolicyHash: ev.NewHash, Reason: "policy reloaded from " + e.cfg.PolicyFile}
	if p := e.policy.Policy(); p != nil {
		d.PolicyID = p.ID()
	}
	if !ev.OK {
		d.Effect, d.Code, d.PolicyHash = event.EffectDeny, "policy_reload_failed", ev.OldHash
		d.Reason = fmt.Sprintf("reload of %s failed, %s still decides: %v", e.cfg.PolicyFile, ev.OldHash, ev.Err)
		e.log.Error("policy reload failed", "err", ev.Err)
	} else {
		e.log.Info("policy reloaded", "old_hash", ev.OldHash, "new_hash", ev.NewHash)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.audit.Publish(ctx, &event.Event{Kind: event.KindPolicy, Decision: d}); err != nil {
		e.log.Error("policy change not recorded", "err", err)
	}
}

// exchange is the record of one request while it is handled.
type exchange struct {
	listCursor string // of a tools/list request, to pin its answer's page
	// rpcID is the JSON-RPC id of a request on an MCP endpoint, once
	// read: its refusals are answered as JSON-RPC errors for that id.
	rpcID json.RawMessage
	// answerID is the JSON-RPC id of a client's response: of the server
	// request it answers. mcpSession is the MCP session header sent.
	answerID   json.RawMessage
	mcpSession string
	endpoint   bool // the request is on an MCP endpoint (mcp.paths)
	id         string
	start      time.Time
	trace      event.Trace
	ident      *identity.Identity // nil until verified
	request    *event.Request
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

// serveProxy is the reverse-proxy mode: decide, then forward or answer.
// The host decided on and recorded is the upstream's, where the request is
// sent with that Host: the client's Host names nothing here, and letting
// it pick the destination would let a client choose its data class.
func (e *Enforcer) serveProxy(w http.ResponseWriter, r *http.Request) {
	c := &check{method: r.Method, host: e.upstreamHost, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header, body: r.Body}
	c.peerSPIFFE, c.certErr = peerSPIFFEID(r.TLS)
	o := e.decide(r.Context(), c)
	w.Header().Set(HeaderRequestID, o.id)
	if !o.allow {
		o.code.setHeader(w.Header())
		writeReply(w, o.status, o.reply)
		return
	}
	e.forward(w, r, o)
}

// hopHeaders are connection-scoped (RFC 9110 §7.6.1) and never forwarded,
// along with any header the Connection header names. Upgrade goes too: an
// upgraded connection would carry bytes no decision has seen.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardedHeaders describe the path of a request through proxies; a
// client may not write them. X-Forwarded-For survives from trusted proxies.
var forwardedHeaders = []string{"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip"}

// sanitize removes from h what must not reach the backend: hop-by-hop
// headers, headers the client claims on the enforcer's or a proxy's
// behalf. trustedPeer keeps X-Forwarded-For for the proxy to extend.
func sanitize(h http.Header, trustedPeer bool) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	for _, k := range forwardedHeaders {
		h.Del(k)
	}
	for _, k := range overrideHeaders {
		h.Del(k)
	}
	for k := range h {
		switch {
		case strings.Contains(k, "_"):
			// CGI and WSGI servers read X_Rampart_Tenant as X-Rampart-Tenant:
			// every check here names the dashed spelling, so, as nginx does
			// by default, such names go.
			delete(h, k)
		case strings.HasPrefix(k, headerPrefix),
			strings.HasPrefix(k, "X-Original-"),
			strings.HasPrefix(k, "X-Forwarded-") && (k != "X-Forwarded-For" || !trustedPeer):
			delete(h, k)
		}
	}
}

// forward sends an allowed request to the upstream and records its answer.
func (e *Enforcer) forward(w http.ResponseWriter, r *http.Request, o *outcome) {
	sanitize(r.Header, inPrefixes(e.forwarders, remoteAddr(r)))
	for k, v := range o.upstreamHeader() {
		r.Header[k] = v
	}
	r.Body = io.NopCloser(bytes.NewReader(o.body))
	r.ContentLength = int64(len(o.body))
	r.TransferEncoding = nil
	r.Trailer = nil // a chunked body's trailers: headers no check saw, which HTTP/2 would send on

	rec := &recorder{ResponseWriter: w, status: http.StatusOK, onServerMessage: func(data []byte) string { return e.serverMessage(o.x, data) }}
	if o.x.request.RPCMethod == mcp.MethodToolsList {
		rec.keep = maxObservedListing // the listing's schemas are pinned below
	}
	start := time.Now()
	x := o.x
	// The reverse proxy aborts the handler (panics with
	// http.ErrAbortHandler) when a streamed answer breaks off, on either
	// side: the response event is queued on the way out all the same, so
	// every forwarded call's record says how it ended.
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			panic(p)
		}
		if r.Method == http.MethodDelete && rec.status/100 == 2 && p == nil {
			e.releaseSession(x, r.Header) // the MCP session is over
		}
		if rec.keep > 0 && p == nil {
			e.observeListing(x, rec)
		}
		e.queueResponse(&event.Event{
			Kind: event.KindResponse, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(),
			Request: x.request, Response: &event.Response{Status: rec.status, DurationNs: time.Since(start).Nanoseconds(),
				Bytes: rec.bytes, Outcome: rec.outcome(p != nil, r.Context().Err() != nil)},
		})
		if p != nil {
			panic(p) // net/http ends the connection, as the proxy meant
		}
	}()
	e.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
}

// queueResponse hands a response event to the recorder. The answer must
// not wait for its own record: the event is queued (bounded; when full,
// this request waits: backpressure, never a drop) and recorded in order by
// one goroutine. A handler still running while the enforcer closes
// records its own.
func (e *Enforcer) queueResponse(resp *event.Event) {
	select {
	case <-e.closing:
		e.recordResponse(resp)
	case e.responses <- resp:
	}
}

// responseQueue bounds response events waiting to be recorded.
const responseQueue = 4096

// responseBatch bounds the response events recorded in one round trip.
const responseBatch = 256

// recordResponses records queued response events until Close, then what
// is still queued. It takes whatever has queued up while the previous
// events were being acknowledged, up to responseBatch, and records them
// together: one event per JetStream round trip would cap the enforcer's
// throughput at the inverse of the ack latency, every handler waiting on
// the full queue.
func (e *Enforcer) recordResponses() {
	defer close(e.responded)
	batch := make([]*event.Event, 0, responseBatch)
	for {
		select {
		case resp := <-e.responses:
			batch = append(batch[:0], resp)
		fill:
			for len(batch) < responseBatch {
				select {
				case resp := <-e.responses:
					batch = append(batch, resp)
				default:
					break fill
				}
			}
			e.recordResponse(batch...)
		case <-e.closing:
			for {
				select {
				case resp := <-e.responses:
					e.recordResponse(resp)
				default:
					return
				}
			}
		}
	}
}

// recordResponse records response events in one call, in order.
func (e *Enforcer) recordResponse(resps ...*event.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*e.cfg.NATS.PublishTimeout)
	defer cancel()
	err := e.audit.PublishBatch(ctx, resps...)
	if err != nil && len(resps) > 1 && !errors.Is(err, audit.ErrUnavailable) {
		// One event the publisher refused must not cost the others theirs.
		for _, resp := range resps {
			e.recordResponse(resp)
		}
		return
	}
	if err != nil {
		for _, resp := range resps {
			e.log.Warn("response event not recorded", "request_id", resp.RequestID, "err", err)
		}
	}
}

// maxObservedListing bounds the tools/list answer kept to pin its schemas.
const maxObservedListing = 4 << 20

// recorder notes the status and size of a response as it passes, and
// keeps up to keep bytes of its body.
type recorder struct {
	http.ResponseWriter
	status        int
	bytes         int64
	written       bool
	keep          int
	kept          []byte
	writeErr      error // the first failed write to the client
	unavailable   bool  // the upstream gave no answer (the proxy's ErrorHandler ran)
	withheld      bool  // the upstream's answer was not passed on (errSessionHeld)
	streamRefused bool  // an SSE answer was cut off where it could not be read
	// onServerMessage, when set, sees each message of an SSE answer before
	// the client does.
	onServerMessage func(data []byte) (refuse string)
	sse             *sseReader
}

// outcome is how the exchange ended, once the proxy returned or aborted;
// clientDone is the client's request context having ended.
func (r *recorder) outcome(aborted, clientDone bool) string {
	switch {
	case r.withheld:
		return event.OutcomeAnswerWithheld
	case r.streamRefused:
		return event.OutcomeStreamRefused
	case r.unavailable:
		return event.OutcomeUpstreamUnavailable
	case r.writeErr != nil || aborted && clientDone:
		return event.OutcomeClientGone
	case aborted:
		return event.OutcomeUpstreamAborted
	}
	return event.OutcomeCompleted
}

func (r *recorder) WriteHeader(status int) {
	if !r.written && status >= 200 { // 1xx (103 Early Hints) precede the real status
		r.status, r.written = status, true
		if r.onServerMessage != nil && status/100 == 2 && isEventStream(r.Header()) {
			r.sse = &sseReader{onEvent: r.onServerMessage, limit: maxServerMessage}
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.written {
		r.WriteHeader(http.StatusOK)
	}
	if r.sse != nil {
		r.sse.feed(b) // before the client can answer what it carries
		if r.sse.refused != "" {
			// What the client would read here is not what was read: the
			// stream ends rather than pass on unread.
			r.streamRefused = true
			return 0, errStreamRefused
		}
	}
	if r.keep > 0 && len(r.kept)+len(b) <= r.keep {
		r.kept = append(r.kept, b...)
	} else {
		r.keep, r.kept = 0, nil // too large to pin from
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if err != nil && r.writeErr == nil {
		r.writeErr = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach Flush on the real writer, which
// streamed (SSE) MCP responses need.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
