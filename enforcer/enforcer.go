// Package enforcer is Rampart's boundary between AI agents and the tools
// they call. It identifies the caller (identity), reads the tool call (mcp),
// decides on it (policy) and records request and decision in JetStream
// (audit) — one decision path, served in several modes: as a reverse proxy
// that forwards allowed requests itself, as a forward-auth endpoint for
// nginx or Caddy, and as Envoy's ext_authz service (package extauthz). In
// every mode a request is let through only when the decision is allow and
// its record is acknowledged, and every mode records the same events.
// With credentials configured (proxy mode) it is also the credential
// broker: token exchange, introspection and revocation (broker*.go).
package enforcer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/binding"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/enforcer/extauthz"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/enforcer/toolschema"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
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
	metrics      *metrics
	tracer       trace.Tracer
	schemas      *toolschema.Registry
	dests        *destination.Map
	minter       *credential.Minter      // nil unless credentials are configured
	tasks        *task.Store             // every task's shared state
	revocations  *credential.Revocations // ended tasks and revoked credentials, watched
	revocationKV jetstream.KeyValue      // the same bucket, read and written by the broker
	watchers     sync.WaitGroup          // the task and revocation watches
	inflight     chan struct{}           // one slot per request being handled
	responses    chan *event.Event       // response events on their way to the record
	closing      chan struct{}           // closed by Close: no more queueing
	responded    chan struct{}           // closed when the response recorder has drained
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
	// crashPoint, set by tests only, stops this instance (true) between
	// a task's end and its revoked events, as a crash there would.
	crashPoint atomic.Pointer[func(task.Record) bool]
}

// New builds an enforcer from cfg, which it defaults and validates: it
// loads the policy, the key set and the TLS material, and connects to
// JetStream. Any failure is fatal; an enforcer never starts without its
// record. ctx bounds the start (fetching the key set, ensuring the
// streams), as does startTimeout; what runs after, until Close, does not
// depend on it.
func New(ctx context.Context, cfg Config) (*Enforcer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
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
	if cfg.Credentials.Enabled() {
		if e.minter, err = credential.New(cfg.Credentials); err != nil {
			return nil, fmt.Errorf("enforcer: %w", err)
		}
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
	e.tracer = installedTracer(otel.GetTracerProvider())
	if e.metrics, err = newMetrics(otel.GetMeterProvider()); err != nil {
		e.log.Warn("enforcer metrics not registered", "err", err) // requests are still decided
		e.metrics, _ = newMetrics(noop.NewMeterProvider())
	}
	if e.budgetReg, err = budgets.Instrument(otel.GetMeterProvider()); err != nil {
		e.log.Warn("budget metrics not registered", "err", err) // the budgets still hold
	}
	e.inflight = make(chan struct{}, cfg.MaxInFlight)
	e.responses, e.closing, e.responded = make(chan *event.Event, responseQueue), make(chan struct{}), make(chan struct{})
	go e.recordResponses()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	e.stopWatch = stopWatch
	go func() { _ = e.policy.Run(watchCtx) }()
	if err := e.startTasks(ctx, watchCtx); err != nil {
		e.Close()
		return nil, fmt.Errorf("enforcer: %w", err)
	}
	if cfg.Enabled(ModeProxy) {
		e.proxy = e.newProxy()
	}
	if cfg.Enabled(ModeExtAuthzHTTP) {
		e.authzHTTP = extauthz.HTTPHandler(authorizer{e}, cfg.ExtAuthz.HTTPPathPrefix, cfg.MaxBodyBytes)
	}
	e.log.Info("enforcer ready", "modes", cfg.Modes, "policy", e.policy.Policy().ID(), "policy_hash", e.policy.Policy().Hash(), "upstream", cfg.Upstream)
	return e, nil
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
		e.metrics.observe(r.Context(), false, CodeOverloaded, time.Time{})
		writeError(w, CodeOverloaded, "", "", nil)
		return
	}
	p := r.URL.Path
	switch {
	case p == taskAPIPath || strings.HasPrefix(p, taskAPIPath+"/"):
		// Never forwarded: the task API is the enforcer's own, whatever
		// the upstream serves under that path.
		e.serveTaskAPI(w, r)
	case brokerDestinations[p] != "" && e.proxy != nil:
		// Served with credentials, and never forwarded without: a subject
		// token sent here is no backend's. Gateway modes leave the paths to
		// what they serve (they never have credentials).
		e.serveBroker(w, r)
	case e.minter != nil && p == credential.JWKSPath:
		// The keys of the tokens backends receive, public halves only; the
		// backend's own path of that name is not reachable through here.
		e.minter.Keys().Handler().ServeHTTP(w, r)
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

// Close releases the JetStream connection and the JWKS refresh.
func (e *Enforcer) Close() {
	e.stopWatch()
	e.watchers.Wait()
	close(e.closing)
	<-e.responded
	e.audit.Close()
	e.verifier.Close()
	if e.budgetReg != nil {
		_ = e.budgetReg.Unregister()
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

// startTasks opens the task and revocation buckets and starts watching
// them under watchCtx, and waits (within ctx) until both views hold their
// bucket's whole history: an instance never decides on a partial view.
func (e *Enforcer) startTasks(ctx, watchCtx context.Context) error {
	ttl := e.cfg.taskRecordTTL()
	tasksKV, revsKV, err := stream.EnsureTaskBuckets(ctx, e.audit.JetStream(), *e.cfg.NATS.Stream, ttl)
	if err != nil {
		return err
	}
	e.revocations = credential.NewRevocations(e.cfg.Revocations, revsKV, ttl, e.log)
	e.revocationKV = revsKV
	e.tasks = task.New(e.cfg.Tasks, tasksKV, revsKV, e.cfg.Instance, e.log,
		task.OnEnd(e.taskEnded), task.OnUnrecorded(e.reemitRevoked), task.KnownRevoked(e.revocations.TaskEnded))
	for _, run := range []func(context.Context) error{e.revocations.Run, e.tasks.Run} {
		e.watchers.Add(1)
		go func() {
			defer e.watchers.Done()
			if err := run(watchCtx); err != nil {
				e.log.Error("task state watch stopped", "err", err)
			}
		}()
	}
	for _, ready := range []<-chan struct{}{e.revocations.Ready(), e.tasks.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("task state not read: %w", ctx.Err())
		}
	}
	return nil
}
