package faults

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natscluster"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"

	"gopkg.in/yaml.v3"
)

var soak = os.Getenv("RAMPART_SOAK") != ""

// outage is how long NATS or ClickHouse stays down.
func outage() time.Duration {
	if soak {
		return 30 * time.Second
	}
	return 10 * time.Second
}

const policyYAML = `id: faults
rules:
  - id: allow-search
    match: 'tool == "search"'
    effect: allow
  - id: deny-shell
    match: 'tool == "shell"'
    effect: deny
`

// rig is a whole pipeline on loopback.
type rig struct {
	t       testing.TB
	dir     string
	nats    *natstest.Server     // single node, or
	cluster *natscluster.Cluster // three nodes
	chAddr  string
	chHTTP  string // the HTTP interface the collector inserts over
	chSrv   *chserver.Server
	ch      *chstore.Client
	backend *toolserver.Server
	backURL string
	issuer  *workload.Issuer
	jwks    string
	policy  string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), nats: natstest.Run(t), backend: &toolserver.Server{}}
	r.setUp()
	return r
}

// setUp starts what every rig has beside NATS: ClickHouse, the backend
// and the identity provider.
func (r *rig) setUp() {
	t := r.t
	t.Helper()
	r.chAddr, r.chSrv = chtest.Server(t)
	if r.chSrv == nil {
		t.Fatal("the fault suite kills ClickHouse: it needs a private server (unset RAMPART_CLICKHOUSE_ADDR)")
	}
	r.ch = chtest.Open(t, r.chAddr)
	r.chHTTP = r.ch.HTTPAddr()
	r.setUpEdges()
}

// setUpEdges starts what a rig has beside NATS and ClickHouse: the
// backend and the identity provider.
func (r *rig) setUpEdges() {
	t := r.t
	t.Helper()
	back := httptest.NewServer(r.backend)
	t.Cleanup(back.Close)
	r.backURL = back.URL
	var err error
	if r.issuer, err = workload.NewIssuer("https://idp.faults.local", "rampart-tools"); err != nil {
		t.Fatal(err)
	}
	jwks, _ := r.issuer.JWKS()
	r.jwks, r.policy = filepath.Join(r.dir, "jwks.json"), filepath.Join(r.dir, "policy.yaml")
	os.WriteFile(r.jwks, jwks, 0o600)
	os.WriteFile(r.policy, []byte(policyYAML), 0o600)
}

// natsURL is what components are given: the single node's URL, or every
// node's of the cluster.
func (r *rig) natsURL() string {
	if r.cluster != nil {
		return r.cluster.URLs()
	}
	return r.nats.URL()
}

// jetStream is a client of the rig's JetStream, closed with the test.
func (r *rig) jetStream() jetstream.JetStream {
	if r.cluster != nil {
		return r.cluster.JetStream()
	}
	return r.nats.JetStream()
}

// enforcerConfig is the configuration both the in-process and the
// subprocess enforcers use.
func (r *rig) enforcerConfig(instance, onUnavailable string) enforcer.Config {
	var c enforcer.Config
	c.Upstream = r.backURL
	c.Instance = instance
	c.Identity.Issuer, c.Identity.Audience, c.Identity.JWKSFile = r.issuer.URL, r.issuer.Audience, r.jwks
	c.PolicyFile = r.policy
	c.NATS = audit.Config{URL: stream.URLs(r.natsURL()), PublishTimeout: time.Second, OnUnavailable: onUnavailable,
		Spool: spool.Config{Dir: filepath.Join(r.dir, "spool-"+instance)}}
	c.SetDefaults()
	return c
}

// startEnforcer runs an enforcer in this process and returns its URL.
func (r *rig) startEnforcer(instance, onUnavailable string) string {
	r.t.Helper()
	e, err := enforcer.New(context.Background(), r.enforcerConfig(instance, onUnavailable))
	if err != nil {
		r.t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	r.t.Cleanup(func() { srv.Close(); e.Close() })
	return srv.URL
}

// startCollector runs a collector in this process until the test ends.
func (r *rig) startCollector() {
	r.t.Helper()
	cfg := collector.Defaults()
	cfg.NATSURL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = stream.URLs(r.natsURL()), chstore.AddrList(r.chAddr), r.ch.Database()
	cfg.ClickHouse.HTTPAddr = chstore.AddrList(r.chHTTP) // the fast insert path, as the README advises
	cfg.BatchWait, cfg.RetryDelay = 100*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	c, err := collector.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done; c.Close() })
}

// result is what the client saw of one request.
type result struct {
	id     string
	status int
	tool   string
}

// load sends requests at a fixed rate until stop is closed, and returns
// what each got. Every other call is denied by policy.
func (r *rig) load(url string, rate int, stop <-chan struct{}) func() []result {
	return r.loadAs(url, rate, stop, workload.Caller{Tenant: "acme", Principal: "user:alice", Actors: []string{"agent:planner"}, Session: "s1"})
}

// loadAs is load with calls made as caller.
func (r *rig) loadAs(url string, rate int, stop <-chan struct{}, caller workload.Caller) func() []result {
	var (
		mu  sync.Mutex
		out []result
		wg  sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	driver := &workload.Driver{URL: url + "/mcp", Issuer: r.issuer, Client: client}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tool := []string{"search", "shell"}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := driver.Run(context.Background(), []workload.Call{{Caller: caller, RPCMethod: "tools/call", Tool: tool, Args: map[string]any{"q": i}}}, 1)[0]
				mu.Lock()
				out = append(out, result{id: res.RequestID, status: res.Status, tool: tool})
				mu.Unlock()
			}()
		}
	}()
	return func() []result { wg.Wait(); mu.Lock(); defer mu.Unlock(); return slices.Clone(out) }
}

// tally is a reconciliation of one fault run.
type tally struct {
	Sent, Allowed, Denied, Refused, Failed int // at the client
	Recorded                               int // distinct decisions in ClickHouse for the client's requests
	Lost                                   int // answered 200/403 but no decision stored
	Duplicated                             int // stored event rows beyond one per event id, in the view
	ForwardedUnrecorded                    int // seen by the backend without a stored allow
}

func (tl tally) String() string {
	return fmt.Sprintf("sent %d (allowed %d, denied %d, refused 503 %d, failed %d); recorded %d, lost %d, duplicated %d, forwarded unrecorded %d",
		tl.Sent, tl.Allowed, tl.Denied, tl.Refused, tl.Failed, tl.Recorded, tl.Lost, tl.Duplicated, tl.ForwardedUnrecorded)
}

// reconcile waits until ClickHouse holds a decision for every request the
// client got an answer to, then joins the three logs.
func (r *rig) reconcile(results []result) tally {
	r.t.Helper()
	ctx := context.Background()
	var tl tally
	answered := map[string]bool{}
	for _, res := range results {
		tl.Sent++
		switch res.status {
		case http.StatusOK:
			tl.Allowed++
			answered[res.id] = true
		case http.StatusForbidden:
			tl.Denied++
			answered[res.id] = true
		case http.StatusServiceUnavailable:
			tl.Refused++
		default:
			tl.Failed++
		}
	}
	db := r.ch.Database()
	decisions := map[string]string{}
	missing := len(answered)
	_ = poll.Wait(90*time.Second, func() error {
		rows, err := r.ch.Query(ctx, "SELECT request_id, effect FROM "+db+".events WHERE kind = 'decision'")
		if err != nil {
			return err
		}
		clear(decisions)
		for _, row := range rows {
			decisions[row[0]] = row[1]
		}
		missing = 0
		for id := range answered {
			if _, ok := decisions[id]; !ok {
				missing++
			}
		}
		if missing != 0 {
			return fmt.Errorf("%d decisions missing", missing)
		}
		return nil
	})
	tl.Lost = missing // what is still missing after the deadline is lost
	for id := range answered {
		if _, ok := decisions[id]; ok {
			tl.Recorded++
		}
	}
	dup, err := r.ch.Query(ctx, "SELECT count() - uniqExact(event_id) FROM "+db+".events")
	if err != nil {
		r.t.Fatal(err)
	}
	tl.Duplicated, _ = strconv.Atoi(dup[0][0])
	for _, id := range r.backend.Seen() {
		if decisions[id] != "allow" {
			tl.ForwardedUnrecorded++
		}
	}
	return tl
}

// verifyClean runs `rampart verify` over everything stored.
func (r *rig) verifyClean() {
	r.t.Helper()
	// Verify the record at rest: reconcile waited for the decisions, but
	// response events and redeliveries after a collector kill may still be
	// on their way, and a gap among them proves nothing yet. Tampering or
	// loss would persist past the deadline.
	var res *verify.Result
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var err error
		if res, err = verify.Run(context.Background(), r.ch, verify.Options{NATSURL: r.natsURL()}); err != nil {
			r.t.Fatal(err)
		}
		if res.InFlight == 0 && res.Clean() || time.Now().After(deadline) {
			break
		}
	}
	if !res.Clean() {
		r.t.Fatalf("verify found tampering in an untampered record (%d events in flight): %v", res.InFlight, res.Findings)
	}
	r.t.Logf("verify: %d events in %d chains clean (%d unrecorded gaps reported by enforcers)", res.Events, res.Chains, len(res.Findings))
}

// rampartBinary builds cmd/rampart once for the subprocess faults.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func rampartBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rampart-faults-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rampart")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/rampart-io/rampart/cmd/rampart").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a rampart subprocess the suite can SIGKILL.
type process struct {
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
}

// exited reports whether p ended without being killed by the suite, with
// the end of its log: a component that gave up must fail the case that
// made it, not leave a consumer to time out.
func (p *process) exited() (string, bool) {
	select {
	case <-p.done:
	default:
		return "", false
	}
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Sprintf("%s exited (%v):\n%s", strings.Join(p.cmd.Args, " "), p.cmd.ProcessState, b), true
}

func (r *rig) spawn(args ...string) *process {
	r.t.Helper()
	cmd := exec.Command(rampartBinary(r.t), args...)
	logPath := filepath.Join(r.dir, args[0]+".log")
	log, _ := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	r.t.Cleanup(p.kill)
	return p
}

// enforcerFile writes cfg as the YAML file name in the rig's directory,
// for `rampart enforcer -config`.
func (r *rig) enforcerFile(name string, cfg enforcer.Config) string {
	r.t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	file := filepath.Join(r.dir, name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		r.t.Fatal(err)
	}
	return file
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitListening polls until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	poll.Until(t, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("nothing listening on %s: %w", addr, err)
		}
		return c.Close()
	})
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
