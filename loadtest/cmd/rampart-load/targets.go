package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/loadtest/loadgen"
	"github.com/rampart-io/rampart/loadtest/proc"
	"github.com/rampart-io/rampart/schema/stream"
)

// target is one HTTP endpoint under load and how to call it.
type target struct {
	name   string
	url    string
	header http.Header // besides Authorization and Content-Type
	pid    int         // a separate process whose memory is sampled, or 0
	client *http.Client
}

// maxConns bounds each target's connections. A target that falls behind an
// open-loop rate would otherwise be sent a new connection per queued
// request until file descriptors run out; with the bound, the requests
// queue in the client instead, and that wait counts in their latency.
const maxConns = 256

// newTarget makes a target with its own connection pool, large enough that
// a target keeping up never waits for or churns a connection.
func newTarget(name, url string, header http.Header) *target {
	tr := &http.Transport{MaxConnsPerHost: maxConns, MaxIdleConnsPerHost: maxConns, DisableCompression: true, IdleConnTimeout: time.Minute}
	return &target{name: name, url: url, header: header, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// sender returns a Sender posting body with token that expects want.
func (t *target) sender(body []byte, token string, want int) loadgen.Sender {
	return func(ctx context.Context) error {
		status, msg, err := t.post(ctx, body, token)
		if err != nil {
			return err
		}
		if status != want {
			return fmt.Errorf("%s: status %d, want %d: %s", t.name, status, want, msg)
		}
		return nil
	}
}

// post sends one call and returns the status and, unless 2xx, the answer.
func (t *target) post(ctx context.Context, body []byte, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, "", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// gatewaySecret is the forward-auth secret the load's "gateway" sends.
const gatewaySecret = "load-gateway-secret-0123456789"

// forwardAuthHeader is what a gateway (nginx, as configured in the README)
// sends the enforcer (and OPA) about the original request.
func forwardAuthHeader() http.Header {
	h := http.Header{}
	h.Set(enforcer.HeaderGatewaySecret, gatewaySecret)
	h.Set("X-Original-Method", http.MethodPost)
	h.Set("X-Original-URI", "/mcp")
	h.Set("X-Original-Host", "mcp.acme.internal")
	return h
}

// serve serves h on a fresh loopback listener until the returned stop is
// called, and returns its base URL.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// bareProxy is the baseline: Go's reverse proxy with nothing in between,
// forwarding as the enforcer does (the default transport, keeping up to
// 256 idle connections to the backend as the enforcer's proxy does).
func bareProxy(upstream string) (http.Handler, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{Transport: transport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.SetXForwarded()
	}}, nil
}

// noopAuth answers every check 200 after reading its body: the cost of the
// HTTP round trip alone, the baseline for decision endpoints.
func noopAuth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// jetStream is a single-node JetStream server the run's enforcers record to.
type jetStream interface {
	ClientURL() string
	Shutdown()
}

// startJetStream runs a single-node JetStream with file storage in dir on
// a free loopback port: embedded in this process, or, given bin, as a
// nats-server process of its own.
func startJetStream(ctx context.Context, bin, dir string, syncAlways bool) (jetStream, error) {
	if bin != "" {
		return proc.StartNATS(ctx, bin, dir, syncAlways)
	}
	return startEmbeddedJetStream(dir, syncAlways)
}

func startEmbeddedJetStream(dir string, syncAlways bool) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{
		ServerName: "rampart-load", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, SyncAlways: syncAlways, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats: embedded server not ready")
	}
	return s, nil
}

// world is everything a run needs that the enforcers share.
type world struct {
	dir        string
	backend    string
	policyFile string
	jwksFile   string
	secretFile string // forward_auth's gateway secret
	issuer     string
	audience   string
	bare       http.Handler // the bare proxy to the backend, which the recording proxy wraps
}

// enforcerConfig is the enforcer's configuration for this run: proxy and
// forward-auth modes, the load's policy and key set, events to natsURL.
func (w *world) enforcerConfig(instance, natsURL string) enforcer.Config {
	var c enforcer.Config
	c.Instance = instance
	c.Modes = []string{enforcer.ModeProxy, enforcer.ModeForwardAuth}
	c.Upstream = w.backend
	c.ForwardAuth.Gateway, c.ForwardAuth.SecretFile = enforcer.GatewayNginx, w.secretFile
	c.PolicyFile = w.policyFile
	c.Identity.Issuer = w.issuer
	c.Identity.Audience = w.audience
	c.Identity.JWKSFile = w.jwksFile
	c.NATS.URL = stream.URLs(natsURL)
	return c
}

// startEnforcer runs an enforcer in this process, served as `rampart
// enforcer` serves it (framing checks, timeouts, limits), and returns its
// base URL and a stop func.
func startEnforcer(cfg enforcer.Config) (string, func(), error) {
	e, err := enforcer.New(context.Background(), cfg)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Serve(ctx, enforcer.Listeners{HTTP: ln}) }()
	return "http://" + ln.Addr().String(), func() { cancel(); <-done; e.Close() }, nil
}

// startSpoolingEnforcer runs an enforcer whose JetStream goes away after it
// connected, so every event goes to its local spool (group-committed fsync).
func (w *world) startSpoolingEnforcer() (string, func(), error) {
	dir := filepath.Join(w.dir, "nats-spool")
	ns, err := startEmbeddedJetStream(dir, false)
	if err != nil {
		return "", nil, err
	}
	cfg := w.enforcerConfig("load-spool", ns.ClientURL())
	cfg.NATS.OnUnavailable = audit.Spool
	cfg.NATS.Spool.Dir = filepath.Join(w.dir, "spool")
	url, stop, err := startEnforcer(cfg)
	if err != nil {
		ns.Shutdown()
		return "", nil, err
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	return url, stop, nil
}

// startEnforcerProcess runs `bin -config FILE` (rampart-enforcer) as a child process
// so its memory can be measured apart from the load generator's.
func (w *world) startEnforcerProcess(ctx context.Context, bin, natsURL string) (string, *exec.Cmd, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf(`listen: %s
modes: [proxy, forward_auth]
upstream: %s
instance: load-process
forward_auth: {gateway: nginx, secret_file: %s}
policy_file: %s
identity:
  issuer: %s
  audience: %s
  jwks_file: %s
nats:
  url: %s
`, addr, w.backend, w.secretFile, w.policyFile, w.issuer, w.audience, w.jwksFile, natsURL)
	file := filepath.Join(w.dir, "enforcer.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(filepath.Join(w.dir, "enforcer-process.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-config", file)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	if err := proc.WaitListening(addr, done); err != nil {
		_ = cmd.Process.Kill()
		log, _ := os.ReadFile(logf.Name())
		return "", nil, fmt.Errorf("enforcer process: %w: %s", err, log)
	}
	return "http://" + addr, cmd, nil
}

// sampleMemory samples pid's RSS every interval until ctx ends and returns
// the largest seen.
func sampleMemory(ctx context.Context, pid int, interval time.Duration) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if m, err := proc.ReadMemory(strconv.Itoa(pid)); err == nil {
				peak = max(peak, m.RSS)
			}
			select {
			case <-ctx.Done():
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}
