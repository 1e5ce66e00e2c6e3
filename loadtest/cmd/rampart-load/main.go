// Command rampart-load measures what the enforcer costs on the request
// path. In one run, on loopback, it starts the sample MCP tool backend, a
// bare Go reverse proxy in front of it (the baseline), the enforcer in
// proxy and forward-auth modes with its record in an embedded JetStream
// (file storage), and Open Policy Agent embedded as a forward-auth decision
// endpoint with the same policy in Rego; then it drives each at fixed rates
// (open loop), at saturation (closed loop), and compares the enforcer's
// audit variants (JetStream, JetStream fsync per ack, local spool). The
// results are printed as Markdown tables; see BENCHMARKS.md.
//
//	go build -o /tmp/rampart ./cmd/rampart
//	go run ./loadtest/cmd/rampart-load -rampart /tmp/rampart
//
// With -rampart, the enforcer also runs as a separate process (`rampart
// enforcer`), measured like the others, so its memory can be read apart
// from this process's.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-io/rampart/loadtest/loadgen"
	"github.com/rampart-io/rampart/loadtest/proc"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
)

//go:embed policy/rampart.yaml
var rampartPolicy []byte

//go:embed policy/authz.rego
var regoPolicy string

// options are the command's flags.
type options struct {
	rates       []float64
	duration    time.Duration
	warmup      time.Duration
	clients     int
	satDuration time.Duration
	satRounds   int
	rateRounds  int
	auditRate   float64
	maxInFlight int
	enforcerBin string
	natsBin     string
	cpuProfile  string
	phases      map[string]bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rampart-load:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("rampart-load", flag.ContinueOnError)
	var o options
	rates := fs.String("rates", "500,1000,2000,3000", "fixed request rates (req/s), comma-separated")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per target and rate")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measurement")
	fs.IntVar(&o.clients, "clients", 32, "concurrent clients in the saturation (closed-loop) run")
	fs.DurationVar(&o.satDuration, "sat-duration", 5*time.Second, "measured time per target at saturation")
	fs.IntVar(&o.satRounds, "sat-rounds", 3, "saturation rounds, every target once a round: ratios are taken within a round")
	fs.IntVar(&o.rateRounds, "rate-rounds", 3, "fixed-rate rounds, every target at every rate once a round: added latency is taken within a round")
	fs.Float64Var(&o.auditRate, "audit-rate", 500, "fixed rate (req/s) of the audit-cost comparison")
	fs.IntVar(&o.maxInFlight, "max-inflight", 10000, "open loop: sends beyond this many outstanding are dropped and counted")
	fs.StringVar(&o.enforcerBin, "enforcer", "", "path to a built rampart-enforcer binary: also measure the enforcer as a separate process (and its RSS)")
	fs.StringVar(&o.natsBin, "nats-server", "", "path to a built nats-server binary: run JetStream in its own processes, as deployed, instead of embedded in this one")
	phases := fs.String("phases", "audit,rates,saturation", "the phases to run, comma-separated: audit, rates, saturation")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "directory: write a CPU profile of this process during each target's saturation run, and its heap at the end")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			return o, fmt.Errorf("-rates: %q is not a positive rate", s)
		}
		o.rates = append(o.rates, r)
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case phaseAudit, phaseRates, phaseSaturation:
			o.phases[p] = true
		default:
			return o, fmt.Errorf("-phases: unknown phase %q", p)
		}
	}
	if o.duration <= 0 || o.satDuration <= 0 || o.warmup < 0 || o.clients < 1 || o.satRounds < 1 || o.rateRounds < 1 || o.auditRate <= 0 {
		return o, errors.New("durations and rates must be positive, -clients and -sat-rounds at least 1")
	}
	return o, nil
}

// The phases of a run.
const (
	phaseAudit      = "audit"
	phaseRates      = "rates"
	phaseSaturation = "saturation"
)

// The targets, by name.
const (
	tBare        = "bare proxy"
	tRecording   = "recording proxy"
	tRampart     = "rampart proxy"
	tProcess     = "rampart proxy (process)"
	tNoop        = "no-op auth endpoint"
	tForwardAuth = "rampart forward-auth"
	tFAProcess   = "rampart forward-auth (process)"
	tOPA         = "OPA forward-auth"
	tSyncAlways  = "rampart proxy, JetStream sync_always"
	tSpool       = "rampart proxy, spool (NATS down)"
)

// baselineOf is what each target's added latency is measured against: the
// bare proxy for proxies, the no-op endpoint for decision endpoints.
func baselineOf(name string) string {
	switch name {
	case tNoop, tForwardAuth, tFAProcess, tOPA:
		return tNoop
	}
	return tBare
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rampart-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var stops stopper
	defer stops.stop()
	b, err := setUp(ctx, o, dir, &stops)
	if err != nil {
		return err
	}
	token, err := b.iss.Token(workload.Caller{Tenant: "acme", Principal: "user:alice@acme.example",
		Actors: []string{"agent:planner", "agent:researcher"}, Session: "load-sess-1", Task: "load-task-1"}, 2*time.Hour)
	if err != nil {
		return err
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue by region"}}}`)
	sender := func(t *target) loadgen.Sender { return t.sender(body, token, 200) }

	r := &report{out: out, opts: o, started: time.Now(), peakRSS: map[string]int64{}}
	r.header(args)
	if err := r.equivalence(ctx, b.iss, b.targets[tForwardAuth], b.targets[tOPA]); err != nil {
		return err
	}
	// At fixed rates, the recording proxy shows what the record alone adds.
	rateSweep := slices.Insert(slices.Clone(b.sweep), 1, tRecording)
	for _, name := range rateSweep {
		if status, msg, err := b.targets[name].post(ctx, body, token); err != nil || status != 200 {
			return fmt.Errorf("%s: first call: status %d %s %v", name, status, msg, err)
		}
	}
	if o.phases[phaseAudit] {
		if err := r.auditPhase(ctx, b, sender); err != nil {
			return err
		}
	}
	if o.phases[phaseRates] {
		if err := r.ratePhase(ctx, b, rateSweep, sender); err != nil {
			return err
		}
	}
	if o.phases[phaseSaturation] {
		if err := r.saturationPhase(ctx, b, sender); err != nil {
			return err
		}
	}
	r.memory(b.targets[tProcess])
	if o.cpuProfile != "" {
		return writeHeapProfile(o.cpuProfile)
	}
	return nil
}

// stopper stops what a run started, last started first.
type stopper []func()

func (s *stopper) add(stop func()) { *s = append(*s, stop) }

func (s *stopper) stop() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i]()
	}
}

// bench is what a run measures: every target by name, the saturation
// sweep, and what they share.
type bench struct {
	iss       *workload.Issuer
	targets   map[string]*target
	sweep     []string
	nsDefault jetStream
}

// setUp starts the backend, the baselines, the JetStreams and the
// enforcers, each stopped by stops.
func setUp(ctx context.Context, o options, dir string, stops *stopper) (*bench, error) {
	w := &world{dir: dir, issuer: "https://idp.load.example", audience: "rampart"}
	backend, stopBackend, err := serve(&toolserver.Server{})
	if err != nil {
		return nil, err
	}
	stops.add(stopBackend)
	w.backend = backend + "/mcp"
	iss, err := workload.NewIssuer(w.issuer, w.audience)
	if err != nil {
		return nil, err
	}
	jwks, err := w.writeFiles(iss)
	if err != nil {
		return nil, err
	}
	b := &bench{iss: iss, targets: map[string]*target{}, sweep: []string{tBare, tRampart, tNoop, tForwardAuth, tOPA}}
	if err := b.startBaselines(ctx, w, jwks, stops); err != nil {
		return nil, err
	}
	if err := b.startEnforcers(ctx, o, w, stops); err != nil {
		return nil, err
	}
	return b, nil
}

// writeFiles writes the key set, the policy and the gateway secret the
// enforcers read, and returns the key set.
func (w *world) writeFiles(iss *workload.Issuer) ([]byte, error) {
	jwks, err := iss.JWKS()
	if err != nil {
		return nil, err
	}
	w.jwksFile = filepath.Join(w.dir, "jwks.json")
	w.policyFile = filepath.Join(w.dir, "policy.yaml")
	w.secretFile = filepath.Join(w.dir, "gateway.secret")
	for _, f := range []struct {
		path string
		data []byte
	}{{w.jwksFile, jwks}, {w.policyFile, rampartPolicy}, {w.secretFile, []byte(gatewaySecret + "\n")}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return jwks, nil
}

// startBaselines starts what the enforcer is compared with: the bare
// proxy, a no-op forward-auth endpoint and OPA.
func (b *bench) startBaselines(ctx context.Context, w *world, jwks []byte, stops *stopper) error {
	proxy, err := bareProxy(w.backend)
	if err != nil {
		return err
	}
	w.bare = proxy
	bareURL, stopBare, err := serve(proxy)
	if err != nil {
		return err
	}
	stops.add(stopBare)
	noopURL, stopNoop, err := serve(noopAuth())
	if err != nil {
		return err
	}
	stops.add(stopNoop)
	opa, err := newOPAAuthz(ctx, regoPolicy, jwks, w.issuer, w.audience)
	if err != nil {
		return err
	}
	opaURL, stopOPA, err := serve(opa)
	if err != nil {
		return err
	}
	stops.add(stopOPA)
	fa := forwardAuthHeader()
	b.targets[tBare] = newTarget(tBare, bareURL+"/mcp", nil)
	b.targets[tNoop] = newTarget(tNoop, noopURL+"/_auth", fa)
	b.targets[tOPA] = newTarget(tOPA, opaURL+"/_auth", fa)
	return nil
}

// startEnforcers starts the JetStreams (default and fsync per write), the
// recording proxy, the enforcer in its audit variants and, with
// -rampart, the enforcer as a process of its own.
func (b *bench) startEnforcers(ctx context.Context, o options, w *world, stops *stopper) error {
	nsDefault, err := startJetStream(ctx, o.natsBin, filepath.Join(w.dir, "nats-default"), false)
	if err != nil {
		return err
	}
	stops.add(nsDefault.Shutdown)
	b.nsDefault = nsDefault
	nsSync, err := startJetStream(ctx, o.natsBin, filepath.Join(w.dir, "nats-sync"), true)
	if err != nil {
		return err
	}
	stops.add(nsSync.Shutdown)

	recording, stopRecording, err := newRecordingProxy(ctx, nsDefault.ClientURL(), w.bare)
	if err != nil {
		return err
	}
	stops.add(stopRecording)
	recordingURL, stopRecordingServer, err := serve(recording)
	if err != nil {
		return err
	}
	stops.add(stopRecordingServer)
	rampartURL, stopRampart, err := startEnforcer(w.enforcerConfig("load-default", nsDefault.ClientURL()))
	if err != nil {
		return err
	}
	stops.add(stopRampart)
	syncURL, stopSync, err := startEnforcer(w.enforcerConfig("load-sync-always", nsSync.ClientURL()))
	if err != nil {
		return err
	}
	stops.add(stopSync)
	spoolURL, stopSpool, err := w.startSpoolingEnforcer()
	if err != nil {
		return err
	}
	stops.add(stopSpool)

	fa := forwardAuthHeader()
	b.targets[tRecording] = newTarget(tRecording, recordingURL+"/mcp", nil)
	b.targets[tRampart] = newTarget(tRampart, rampartURL+"/mcp", nil)
	b.targets[tForwardAuth] = newTarget(tForwardAuth, rampartURL+"/_rampart/auth", fa)
	b.targets[tSyncAlways] = newTarget(tSyncAlways, syncURL+"/mcp", nil)
	b.targets[tSpool] = newTarget(tSpool, spoolURL+"/mcp", nil)
	if o.enforcerBin == "" {
		return nil
	}
	procCtx, cancel := context.WithCancel(ctx)
	procURL, cmd, err := w.startEnforcerProcess(procCtx, o.enforcerBin, nsDefault.ClientURL())
	if err != nil {
		cancel()
		return err
	}
	stops.add(func() { _ = cmd.Process.Signal(syscall.SIGTERM); time.Sleep(200 * time.Millisecond); cancel() })
	t := newTarget(tProcess, procURL+"/mcp", nil)
	t.pid = cmd.Process.Pid
	b.targets[tProcess] = t
	t = newTarget(tFAProcess, procURL+"/_rampart/auth", fa)
	t.pid = cmd.Process.Pid
	b.targets[tFAProcess] = t
	b.sweep = []string{tBare, tRampart, tProcess, tNoop, tForwardAuth, tFAProcess, tOPA}
	return nil
}

// auditPhase is the record's cost at a moderate rate, with the audit-less
// baselines.
func (r *report) auditPhase(ctx context.Context, b *bench, sender func(*target) loadgen.Sender) error {
	o := r.opts
	auditTargets := []string{tBare, tOPA, tRampart, tSyncAlways, tSpool}
	audit := map[string]loadgen.Result{}
	for _, name := range auditTargets {
		send := sender(b.targets[name])
		if o.warmup > 0 {
			loadgen.OpenLoop(ctx, send, o.auditRate, o.warmup, o.maxInFlight)
		}
		audit[name] = r.measure(ctx, b.targets[name], "audit", func() loadgen.Result { return loadgen.OpenLoop(ctx, send, o.auditRate, o.duration, o.maxInFlight) })
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	r.audit(auditTargets, audit)
	return nil
}

// ratePhase runs fixed rates, every target back to back at each rate, in
// rounds: a tail is compared with its baseline's in the same round.
func (r *report) ratePhase(ctx context.Context, b *bench, rateSweep []string, sender func(*target) loadgen.Sender) error {
	o := r.opts
	rates := map[string]map[float64][]loadgen.Result{}
	for range o.rateRounds {
		for _, rate := range o.rates {
			for _, name := range rateSweep {
				t := b.targets[name]
				send := sender(t)
				if o.warmup > 0 {
					loadgen.OpenLoop(ctx, send, rate, o.warmup, o.maxInFlight)
				}
				res := r.measure(ctx, t, fmt.Sprintf("%.0f req/s", rate), func() loadgen.Result { return loadgen.OpenLoop(ctx, send, rate, o.duration, o.maxInFlight) })
				if rates[name] == nil {
					rates[name] = map[float64][]loadgen.Result{}
				}
				rates[name][rate] = append(rates[name][rate], res)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	r.rates(rateSweep, rates)
	return nil
}

// saturationPhase runs a fixed number of clients, back to back, in
// rounds: the host's speed drifts over minutes, so a target is compared
// with the bare proxy of its own round.
func (r *report) saturationPhase(ctx context.Context, b *bench, sender func(*target) loadgen.Sender) error {
	o := r.opts
	sat := map[string][]loadgen.Result{}
	satCPU := map[string][][]time.Duration{} // per round: this process, the enforcer process, nats-server
	natsPid := ""
	if p, ok := b.nsDefault.(*proc.NATS); ok {
		natsPid = fmt.Sprint(p.Pid())
	}
	for round := range o.satRounds {
		for _, name := range b.sweep {
			t := b.targets[name]
			send := sender(t)
			if o.warmup > 0 {
				loadgen.ClosedLoop(ctx, send, o.clients, o.warmup)
			}
			stopProfile, err := startProfile(o.cpuProfile, round, name)
			if err != nil {
				return err
			}
			enforcerPid := ""
			if t.pid != 0 {
				enforcerPid = fmt.Sprint(t.pid)
			}
			cpu := proc.StartCPU("self", enforcerPid, natsPid)
			res := r.measure(ctx, t, fmt.Sprintf("saturation, %d clients", o.clients), func() loadgen.Result { return loadgen.ClosedLoop(ctx, send, o.clients, o.satDuration) })
			sat[name] = append(sat[name], res)
			satCPU[name] = append(satCPU[name], cpu.Used())
			stopProfile()
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	r.saturation(b.sweep, sat)
	r.cpu(b.sweep, sat, satCPU)
	return nil
}

// startProfile profiles the CPU through the first saturation round of a
// target, into dir (when -cpuprofile names one).
func startProfile(dir string, round int, name string) (stop func(), err error) {
	if dir == "" || round != 0 {
		return func() {}, nil
	}
	prof, err := os.Create(filepath.Join(dir, profileName(name)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(prof); err != nil {
		prof.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); prof.Close() }, nil
}

// writeHeapProfile writes what this process keeps: its garbage collection
// is every in-process target's, so its live heap shapes their tails.
func writeHeapProfile(dir string) error {
	f, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}

// profileName is the file name of name's CPU profile.
func profileName(name string) string {
	return strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(strings.ToLower(name)) + ".pprof"
}

// measure runs load against t, sampling t's process memory meanwhile when
// it has one, as the peak of phase.
func (r *report) measure(ctx context.Context, t *target, phase string, load func() loadgen.Result) loadgen.Result {
	// Connections left from this load must not burden the next target's.
	defer t.client.CloseIdleConnections()
	if t.pid == 0 {
		return load()
	}
	sctx, cancel := context.WithCancel(ctx)
	peak := sampleMemory(sctx, t.pid, 100*time.Millisecond)
	res := load()
	cancel()
	if _, ok := r.peakRSS[phase]; !ok {
		r.phases = append(r.phases, phase)
	}
	r.peakRSS[phase] = max(r.peakRSS[phase], <-peak)
	return res
}
