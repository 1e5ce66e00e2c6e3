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

	w := &world{dir: dir, issuer: "https://idp.load.example", audience: "rampart"}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	backend, stopBackend, err := serve(&toolserver.Server{})
	if err != nil {
		return err
	}
	stops = append(stops, stopBackend)
	w.backend = backend + "/mcp"

	iss, err := workload.NewIssuer(w.issuer, w.audience)
	if err != nil {
		return err
	}
	jwks, err := iss.JWKS()
	if err != nil {
		return err
	}
	w.jwksFile = filepath.Join(dir, "jwks.json")
	w.policyFile = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(w.jwksFile, jwks, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(w.policyFile, rampartPolicy, 0o600); err != nil {
		return err
	}
	w.secretFile = filepath.Join(dir, "gateway.secret")
	if err := os.WriteFile(w.secretFile, []byte(gatewaySecret+"\n"), 0o600); err != nil {
		return err
	}

	proxy, err := bareProxy(w.backend)
	if err != nil {
		return err
	}
	bareURL, stopBare, err := serve(proxy)
	if err != nil {
		return err
	}
	stops = append(stops, stopBare)
	noopURL, stopNoop, err := serve(noopAuth())
	if err != nil {
		return err
	}
	stops = append(stops, stopNoop)
	opa, err := newOPAAuthz(ctx, regoPolicy, jwks, w.issuer, w.audience)
	if err != nil {
		return err
	}
	opaURL, stopOPA, err := serve(opa)
	if err != nil {
		return err
	}
	stops = append(stops, stopOPA)

	nsDefault, err := startJetStream(ctx, o.natsBin, filepath.Join(dir, "nats-default"), false)
	if err != nil {
		return err
	}
	stops = append(stops, nsDefault.Shutdown)
	nsSync, err := startJetStream(ctx, o.natsBin, filepath.Join(dir, "nats-sync"), true)
	if err != nil {
		return err
	}
	stops = append(stops, nsSync.Shutdown)

	recording, stopRecording, err := newRecordingProxy(ctx, nsDefault.ClientURL(), proxy)
	if err != nil {
		return err
	}
	stops = append(stops, stopRecording)
	recordingURL, stopRecordingServer, err := serve(recording)
	if err != nil {
		return err
	}
	stops = append(stops, stopRecordingServer)

	rampartURL, stopRampart, err := startEnforcer(w.enforcerConfig("load-default", nsDefault.ClientURL()))
	if err != nil {
		return err
	}
	stops = append(stops, stopRampart)
	syncURL, stopSync, err := startEnforcer(w.enforcerConfig("load-sync-always", nsSync.ClientURL()))
	if err != nil {
		return err
	}
	stops = append(stops, stopSync)
	spoolURL, stopSpool, err := w.startSpoolingEnforcer()
	if err != nil {
		return err
	}
	stops = append(stops, stopSpool)

	fa := forwardAuthHeader()
	targets := map[string]*target{
		tBare:        newTarget(tBare, bareURL+"/mcp", nil),
		tRecording:   newTarget(tRecording, recordingURL+"/mcp", nil),
		tRampart:     newTarget(tRampart, rampartURL+"/mcp", nil),
		tNoop:        newTarget(tNoop, noopURL+"/_auth", fa),
		tForwardAuth: newTarget(tForwardAuth, rampartURL+"/_rampart/auth", fa),
		tOPA:         newTarget(tOPA, opaURL+"/_auth", fa),
		tSyncAlways:  newTarget(tSyncAlways, syncURL+"/mcp", nil),
		tSpool:       newTarget(tSpool, spoolURL+"/mcp", nil),
	}
	sweep := []string{tBare, tRampart, tNoop, tForwardAuth, tOPA}
	if o.enforcerBin != "" {
		procCtx, cancel := context.WithCancel(ctx)
		procURL, cmd, err := w.startEnforcerProcess(procCtx, o.enforcerBin, nsDefault.ClientURL())
		if err != nil {
			cancel()
			return err
		}
		stops = append(stops, func() { _ = cmd.Process.Signal(syscall.SIGTERM); time.Sleep(200 * time.Millisecond); cancel() })
		t := newTarget(tProcess, procURL+"/mcp", nil)
		t.pid = cmd.Process.Pid
		targets[tProcess] = t
		t = newTarget(tFAProcess, procURL+"/_rampart/auth", fa)
		t.pid = cmd.Process.Pid
		targets[tFAProcess] = t
		sweep = []string{tBare, tRampart, tProcess, tNoop, tForwardAuth, tFAProcess, tOPA}
	}

	token, err := iss.Token(workload.Caller{Tenant: "acme", Principal: "user:alice@acme.example",
		Actors: []string{"agent:planner", "agent:researcher"}, Session: "load-sess-1", Task: "load-task-1"}, 2*time.Hour)
	if err != nil {
		return err
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue by region"}}}`)

	r := &report{out: out, opts: o, started: time.Now(), peakRSS: map[string]int64{}}
	r.header(args)
	if err := r.equivalence(ctx, iss, targets[tForwardAuth], targets[tOPA]); err != nil {
		return err
	}
	// At fixed rates, the recording proxy shows what the record alone adds.
	rateSweep := slices.Insert(slices.Clone(sweep), 1, tRecording)
	for _, name := range rateSweep {
		if status, msg, err := targets[name].post(ctx, body, token); err != nil || status != 200 {
			return fmt.Errorf("%s: first call: status %d %s %v", name, status, msg, err)
		}
	}

	// The record's cost at a moderate rate, with the audit-less baselines.
	if o.phases[phaseAudit] {
		auditTargets := []string{tBare, tOPA, tRampart, tSyncAlways, tSpool}
		audit := map[string]loadgen.Result{}
		for _, name := range auditTargets {
			send := targets[name].sender(body, token, 200)
			if o.warmup > 0 {
				loadgen.OpenLoop(ctx, send, o.auditRate, o.warmup, o.maxInFlight)
			}
			audit[name] = r.measure(ctx, targets[name], "audit", func() loadgen.Result { return loadgen.OpenLoop(ctx, send, o.auditRate, o.duration, o.maxInFlight) })
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r.audit(auditTargets, audit)
	}

	// Fixed rates, every target back to back at each rate, in rounds: a
	// tail is compared with its baseline's in the same round.
	if o.phases[phaseRates] {
		rates := map[string]map[float64][]loadgen.Result{}
		for range o.rateRounds {
			for _, rate := range o.rates {
				for _, name := range rateSweep {
					t := targets[name]
					send := t.sender(body, token, 200)
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
	}

	// Saturation: a fixed number of clients, back to back, in rounds: the
	// host's speed drifts over minutes, so a target is compared with the
	// bare proxy of its own round.
	if o.phases[phaseSaturation] {
		sat := map[string][]loadgen.Result{}
		satCPU := map[string][][]time.Duration{} // per round: this process, the enforcer process, nats-server
		natsPid := ""
		if p, ok := nsDefault.(*natsProcess); ok {
			natsPid = fmt.Sprint(p.cmd.Process.Pid)
		}
		for round := range o.satRounds {
			for _, name := range sweep {
				t := targets[name]
				send := t.sender(body, token, 200)
				if o.warmup > 0 {
					loadgen.ClosedLoop(ctx, send, o.clients, o.warmup)
				}
				var prof *os.File
				if o.cpuProfile != "" && round == 0 {
					if prof, err = os.Create(filepath.Join(o.cpuProfile, profileName(name))); err != nil {
						return err
					}
					if err := pprof.StartCPUProfile(prof); err != nil {
						return err
					}
				}
				enforcerPid := ""
				if t.pid != 0 {
					enforcerPid = fmt.Sprint(t.pid)
				}
				cpu := startCPU("self", enforcerPid, natsPid)
				res := r.measure(ctx, t, fmt.Sprintf("saturation, %d clients", o.clients), func() loadgen.Result { return loadgen.ClosedLoop(ctx, send, o.clients, o.satDuration) })
				sat[name] = append(sat[name], res)
				satCPU[name] = append(satCPU[name], cpu.used())
				if prof != nil {
					pprof.StopCPUProfile()
					prof.Close()
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		r.saturation(sweep, sat)
		r.cpu(sweep, sat, satCPU)
	}

	r.memory(targets[tProcess])
	if o.cpuProfile != "" {
		// What this process keeps: its garbage collection is every
		// in-process target's, so its live heap shapes their tails.
		f, err := os.Create(filepath.Join(o.cpuProfile, "heap.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		return pprof.WriteHeapProfile(f)
	}
	return nil
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
