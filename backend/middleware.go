package backend

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HeaderRequestID is the header the enforcer names each forwarded
// request with (its X-Rampart-Request-Id): the report carries it, and the
// correlator finds the decision that forwarded the call by it.
const HeaderRequestID = "X-Rampart-Request-Id"

// maxRequestIDBytes bounds the request id a report carries.
const maxRequestIDBytes = 128

// Verifier verifies Rampart credentials and reports every request. Create
// it with New, wrap handlers with Wrap, and Close it.
type Verifier struct {
	cfg        Config
	log        *slog.Logger
	verifier   verifier
	watch      *watcher      // nil without JetStream
	introspect *introspector // nil without an introspection URL
	rep        *reporter
	refused    atomicCounter

	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

// Option changes how New builds a Verifier.
type Option func(*options)

type options struct {
	js     jetstream.JetStream
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	token  TokenSource
}

// WithJetStream gives the Verifier JetStream: it watches the revocations
// bucket and publishes its reports there. Without it, revocation is
// checked by introspection and no report is made (each counted dropped).
func WithJetStream(js jetstream.JetStream) Option { return func(o *options) { o.js = js } }

// WithHTTPClient sets the client that fetches the JWKS and introspects
// (for the fleet's CA, or mTLS to the enforcer). Default
// http.DefaultClient.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithIntrospectionToken sets where the bearer token presented to the
// introspection endpoint comes from, in place of
// Config.IntrospectionTokenFile: for a token fetched from a workload API
// or minted by the tool server's own identity provider.
func WithIntrospectionToken(src TokenSource) Option { return func(o *options) { o.token = src } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock for exp and nbf.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New builds a Verifier from cfg, which it defaults and validates, and
// starts watching revocations and publishing reports until Close.
func New(cfg Config, opts ...Option) (*Verifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{client: http.DefaultClient, log: slog.Default(), now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	v := &Verifier{cfg: cfg, log: o.log}
	v.verifier = verifier{cfg: &v.cfg, keys: newKeySet(cfg.JWKSURL, cfg.Keys, o.client, o.now), now: o.now}
	if cfg.IntrospectionURL != "" {
		caller, err := callerOf(&cfg, o.token)
		if err != nil {
			return nil, err
		}
		v.introspect = &introspector{url: cfg.IntrospectionURL, client: o.client, caller: caller}
	}
	v.rep = newReporter(o.js, cfg.Report, o.log)
	ctx, cancel := context.WithCancel(context.Background())
	v.stop = cancel
	if o.js != nil {
		v.watch = newWatcher(o.js, o.log, o.now)
		v.wg.Go(func() { v.watch.run(ctx) })
	}
	v.wg.Go(func() { v.rep.run(ctx) })
	return v, nil
}

// callerOf is the introspection caller's credential: exactly one of the
// token file and the token source. Without one every introspection would
// be refused, so a backend relying on it is refused at start instead.
func callerOf(cfg *Config, src TokenSource) (*callerToken, error) {
	switch {
	case src != nil && cfg.IntrospectionTokenFile != "":
		return nil, errors.New("backend: introspection_token_file and WithIntrospectionToken both given: choose one")
	case src != nil:
		return &callerToken{source: src}, nil
	case cfg.IntrospectionTokenFile != "":
		return &callerToken{file: cfg.IntrospectionTokenFile}, nil
	}
	return nil, errors.New("backend: introspection_url needs introspection_token_file or WithIntrospectionToken: the enforcer refuses unauthenticated introspection")
}

// Close stops the watch and the reporter; reports still buffered are
// counted dropped. Wait for Stats().Pending to reach 0 first to keep them.
func (v *Verifier) Close() error {
	v.once.Do(func() {
		v.stop()
		v.wg.Wait()
		v.rep.drain()
	})
	return nil
}

// Stats are the reporter's and the refusals' counters.
func (v *Verifier) Stats() Stats {
	return Stats{Reported: v.rep.reported.Load(), Dropped: v.rep.dropped.Load(), Pending: len(v.rep.queue), Refused: v.refused.load()}
}

// RevocationsReady reports whether the revocations bucket is watched,
// its current keys all read.
func (v *Verifier) RevocationsReady() bool { return v.watch != nil && v.watch.available() }

type credentialKey struct{}

// CredentialFrom returns the verified credential of a request the
// middleware let through.
func CredentialFrom(ctx context.Context) (*Credential, bool) {
	c, ok := ctx.Value(credentialKey{}).(*Credential)
	return c, ok
}

// Wrap returns next behind the middleware: only requests with a valid,
// unrevoked Rampart credential for this backend reach it, and every
// request is reported.
func (v *Verifier) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev := v.eventOf(r)
		cred, code := v.authenticate(r)
		if cred != nil {
			ev.Backend.JTI = cred.JTI
			ev.Identity.Subject, ev.Identity.Issuer, ev.Identity.Chain = cred.Subject, cred.Issuer, cred.Chain
			ev.Identity.TaskID, ev.Identity.SessionID = cred.TaskID, cred.SessionID
			if v.cfg.Tenant == "" {
				ev.Tenant = cred.Tenant
			}
		}
		if code == "" && v.cfg.Report.FailClosed && !v.rep.healthy() {
			code = CodeReportingUnavailable
		}
		if code != "" {
			v.refused.add()
			ev.Backend.Status, ev.Backend.Code = writeRefusal(w, code), code
			v.rep.report(ev)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			ev.Backend.Status = sw.statusOr(http.StatusOK)
			v.rep.report(ev)
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), credentialKey{}, cred)))
	})
}

// eventOf starts the report of r with what the request itself says.
func (v *Verifier) eventOf(r *http.Request) *Event {
	ev := &Event{Time: time.Now().UTC(), Tenant: v.cfg.Tenant, Instance: InstancePrefix + v.cfg.Name,
		Identity: &EventIdentity{SPIFFEID: peerSPIFFEID(r)},
		Request:  &EventRequest{Method: r.Method, Host: r.Host, Path: r.URL.Path},
		Backend:  &EventBackend{Audience: v.cfg.Audience, Client: r.RemoteAddr}}
	// One X-Rampart-Request-Id, of a sane length, or none: two (or a
	// huge one) are no enforcer's, and the correlator flags a report
	// without one.
	if ids := r.Header.Values(HeaderRequestID); len(ids) == 1 && len(ids[0]) <= maxRequestIDBytes {
		ev.RequestID = ids[0]
	}
	return ev
}

// authenticate finds and verifies r's credential, then its revocation.
// The credential is returned whenever its signature verified, with the
// code that refuses it, if any.
func (v *Verifier) authenticate(r *http.Request) (*Credential, string) {
	auth := r.Header.Values("Authorization")
	switch {
	case len(auth) == 0:
		return nil, CodeMissingCredential
	case len(auth) > 1:
		return nil, CodeAmbiguousCredential
	}
	raw, ok := bearer(auth[0])
	if !ok {
		return nil, CodeInvalidCredential
	}
	cred, err := v.verifier.verify(r.Context(), raw)
	var ve *verifyError
	if errors.As(err, &ve) {
		return ve.cred, ve.code
	}
	return cred, v.revoked(r.Context(), cred)
}

// revoked checks c against the watched bucket, or by introspection while
// the bucket cannot be watched; neither: refused, never guessed.
func (v *Verifier) revoked(ctx context.Context, c *Credential) string {
	if v.watch != nil && v.watch.available() {
		return v.watch.check(c)
	}
	if v.introspect == nil {
		return CodeRevocationUnavailable
	}
	active, err := v.introspect.active(ctx, c.Raw)
	switch {
	case err != nil:
		v.log.Warn("introspection failed", "err", err)
		return CodeRevocationUnavailable
	case !active:
		return CodeCredentialRevoked
	}
	return ""
}

// peerSPIFFEID is the SPIFFE id of the client certificate of an mTLS
// request, "" otherwise.
func peerSPIFFEID(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range r.TLS.PeerCertificates[0].URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			return u.String()
		}
	}
	return ""
}

// statusWriter remembers the status the handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer's Flush and the
// like.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) statusOr(def int) int {
	if w.status == 0 {
		return def
	}
	return w.status
}
