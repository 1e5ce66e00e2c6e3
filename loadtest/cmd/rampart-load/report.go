package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rampart-io/rampart/loadtest/loadgen"
	"github.com/rampart-io/rampart/loadtest/proc"
	"github.com/rampart-io/rampart/loadtest/workload"
)

// The targets for the enforcer on a 2-core machine.
const (
	targetAddedP99   = 500 * time.Microsecond // at 3,000 req/s
	targetAddedRate  = 3000
	targetSaturation = 0.60 // of the bare proxy's throughput
	targetRSS        = 64 << 20
)

// report prints the run's results as Markdown.
type report struct {
	out     io.Writer
	opts    options
	started time.Time
	peakRSS map[string]int64 // the enforcer process's, by phase of load
	phases  []string

	// Per enforcer target: p99 added over its baseline by rate, whether
	// both answered every request as expected, and saturation throughput
	// over the bare proxy's.
	addedP99 map[string]map[float64][]time.Duration // by round
	clean    map[string]map[float64]bool
	satRatio map[string]float64
	satClean map[string]bool
}

// enforcers are the targets the targets apply to, in report order.
var enforcers = []string{tRampart, tProcess, tForwardAuth, tFAProcess}

func (r *report) printf(format string, a ...any) { fmt.Fprintf(r.out, format, a...) }

func (r *report) header(args []string) {
	r.printf("# rampart-load\n\n")
	r.printf("`rampart-load %s` — %s, %s %s/%s, GOMAXPROCS=%d, %d CPUs; load generator, servers and JetStream share them%s.\n\n",
		strings.Join(args, " "), r.started.UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), runtime.NumCPU(), where(r.opts.natsBin != "", " (JetStream as nats-server processes)", " (JetStream embedded in this process)"))
	r.printf("Each call: MCP `tools/call` `search`, bearer JWT (EdDSA, two-agent `act` chain, cached after the first verify), decided by a 20-rule policy whose last rule allows it.\n")
	r.printf("Latency is measured from each request's scheduled send time (open loop, no coordinated omission); `svc` columns from its actual send.\n\n")
}

// equivalence checks that the enforcer and OPA decide a set of calls alike.
func (r *report) equivalence(ctx context.Context, iss *workload.Issuer, rampart, opa *target) error {
	caller := workload.Caller{Tenant: "acme", Principal: "user:bob@acme.example", Actors: []string{"agent:planner", "agent:researcher"}, Session: "eq-1"}
	deep := caller
	deep.Actors = []string{"agent:a", "agent:b", "agent:c", "agent:d"}
	other := caller
	other.Tenant = "umbrella"
	call := func(tool string, args map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}})
		return b
	}
	cases := []struct {
		name   string
		caller *workload.Caller
		body   []byte
	}{
		{"search", &caller, call("search", map[string]any{"q": "revenue"})},
		{"crm_lookup", &caller, call("crm_lookup", map[string]any{"id": "c-1"})},
		{"shell", &caller, call("shell", map[string]any{"cmd": "id"})},
		{"read_file /data/q3.csv", &caller, call("read_file", map[string]any{"path": "/data/q3.csv"})},
		{"read_file /data/private/k.csv", &caller, call("read_file", map[string]any{"path": "/data/private/k.csv"})},
		{"send_email inside", &caller, call("send_email", map[string]any{"to": "cfo@acme.example"})},
		{"send_email outside", &caller, call("send_email", map[string]any{"to": "drop@evil.example"})},
		{"delete_records", &caller, call("delete_records", map[string]any{"table": "t"})},
		{"unknown tool", &caller, call("format_disk", map[string]any{})},
		{"tools/list", &caller, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)},
		{"four-agent chain", &deep, call("search", map[string]any{"q": "x"})},
		{"other tenant", &other, call("search", map[string]any{"q": "x"})},
		{"no token", nil, call("search", map[string]any{"q": "x"})},
	}
	r.printf("## Same decisions\n\nThe enforcer (forward-auth, body passed) and OPA on the same calls:\n\n")
	r.printf("| call | rampart | OPA |\n| --- | --- | --- |\n")
	var disagree []string
	for _, c := range cases {
		token := ""
		if c.caller != nil {
			var err error
			if token, err = iss.Token(*c.caller, time.Hour); err != nil {
				return err
			}
		}
		rs, rmsg, err := rampart.post(ctx, c.body, token)
		if err != nil {
			return err
		}
		os, omsg, err := opa.post(ctx, c.body, token)
		if err != nil {
			return err
		}
		// A refused JSON-RPC request is a JSON-RPC error, the rule in its
		// data; a refused plain request names it in Rampart's error body.
		rrule, orule := ruleOf(rmsg, "error", "data", "rule_id"), ruleOf(omsg, "rule_id")
		if rrule == "" {
			rrule = ruleOf(rmsg, "error", "rule_id")
		}
		r.printf("| %s | %d %s | %d %s |\n", c.name, rs, rrule, os, orule)
		if rs != os || rrule != orule {
			disagree = append(disagree, c.name)
		}
	}
	r.printf("\n")
	if len(disagree) > 0 {
		return fmt.Errorf("the enforcer and OPA decide differently on: %s", strings.Join(disagree, ", "))
	}
	return nil
}

// ruleOf digs a rule id out of a JSON answer, or returns "".
func ruleOf(body string, path ...string) string {
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		return ""
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	if s == "unauthenticated" {
		return "" // the enforcer names the identity code, not a rule
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%+.2f", float64(d)/float64(time.Millisecond))
}

// errorsOf counts the failures of one run, or of rounds of one together.
func errorsOf(runs ...loadgen.Result) string {
	var errs, dropped int64
	for _, res := range runs {
		errs += int64(res.Errors)
		dropped += int64(res.Dropped)
	}
	if errs == 0 && dropped == 0 {
		return "0"
	}
	s := fmt.Sprintf("%d", errs)
	if dropped > 0 {
		s += fmt.Sprintf(" (+%d dropped)", dropped)
	}
	return s
}

func (r *report) rates(names []string, res map[string]map[float64][]loadgen.Result) {
	r.addedP99 = map[string]map[float64][]time.Duration{}
	r.clean = map[string]map[float64]bool{}
	n := len(res[names[0]][r.opts.rates[0]])
	r.printf("## Fixed rates (open loop, %s per target and rate, after %s warm-up, %d rounds)\n\n", r.opts.duration, r.opts.warmup, n)
	r.printf("Times in ms, from the round of median p99 for each target. *Added* is p50/p99 minus the baseline's at the same rate in the same round: the bare proxy for proxies, the no-op endpoint for decision endpoints. The added columns give the median round; the last column every round's added p99.\n\n")
	r.printf("| rate/s | target | ok | errors | p50 | p90 | p99 | max | svc p50 | svc p99 | added p50 | added p99 | added p99 by round |\n")
	r.printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, rate := range r.opts.rates {
		for _, name := range names {
			rounds, bases := res[name][rate], res[baselineOf(name)][rate]
			x := rounds[medianRound(rounds, p99)]
			added50, added99, byRound := "–", "–", "–"
			if baselineOf(name) != name {
				a50, a99 := make([]time.Duration, n), make([]time.Duration, n)
				all := make([]string, n)
				ok := true
				for i := range n {
					a50[i] = rounds[i].Quantile(.5) - bases[i].Quantile(.5)
					a99[i] = rounds[i].Quantile(.99) - bases[i].Quantile(.99)
					all[i] = signedMS(a99[i])
					ok = ok && clean(rounds[i]) && clean(bases[i])
				}
				added50, added99, byRound = signedMS(median(slices.Clone(a50))), signedMS(median(slices.Clone(a99))), strings.Join(all, " / ")
				if slices.Contains(enforcers, name) || name == tRecording {
					if r.addedP99[name] == nil {
						r.addedP99[name], r.clean[name] = map[float64][]time.Duration{}, map[float64]bool{}
					}
					r.addedP99[name][rate] = a99
					r.clean[name][rate] = ok
				}
			}
			r.printf("| %.0f | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rate, name, x.OK(), errorsOf(rounds...),
				ms(x.Quantile(.5)), ms(x.Quantile(.9)), ms(x.Quantile(.99)), ms(x.Quantile(1)),
				ms(x.ServiceQuantile(.5)), ms(x.ServiceQuantile(.99)), added50, added99, byRound)
		}
	}
	r.printf("\n")
	for _, name := range names {
		for _, rate := range r.opts.rates {
			for _, x := range res[name][rate] {
				if e := x.FirstErr; e != nil {
					r.printf("First error, %s at %.0f/s: `%v`\n\n", name, rate, e)
					break
				}
			}
		}
	}
}

func (r *report) saturation(names []string, rounds map[string][]loadgen.Result) {
	n := len(rounds[tBare])
	r.printf("## Saturation (closed loop, %d clients, %s per target, %d rounds)\n\n", r.opts.clients, r.opts.satDuration, n)
	r.printf("Each ratio is taken within a round (target / baseline of the same round); the table gives the median round and the range.\n\n")
	r.printf("| target | req/s (median) | req/s by round | vs bare proxy | vs no-op endpoint | p50 ms | p99 ms | errors |\n")
	r.printf("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n")
	ratios := func(name, base string) []float64 {
		out := make([]float64, n)
		for i := range n {
			out[i] = rounds[name][i].Throughput() / rounds[base][i].Throughput()
		}
		return out
	}
	r.satRatio, r.satClean = map[string]float64{}, map[string]bool{}
	for _, name := range names {
		res := rounds[name]
		mid := medianRound(res, loadgen.Result.Throughput)
		x := res[mid]
		byRound := make([]string, n)
		for i, ri := range res {
			byRound[i] = fmt.Sprintf("%.0f", ri.Throughput())
		}
		vsNoop := "–"
		if baselineOf(name) == tNoop {
			vsNoop = percentRange(ratios(name, tNoop))
		}
		r.printf("| %s | %.0f | %s | %s | %s | %s | %s | %s |\n", name, x.Throughput(), strings.Join(byRound, " / "),
			percentRange(ratios(name, tBare)), vsNoop, ms(x.Quantile(.5)), ms(x.Quantile(.99)), errorsOf(res...))
		for _, ri := range res {
			if e := ri.FirstErr; e != nil {
				defer r.printf("First error, %s: `%v`\n\n", name, e)
				break
			}
		}
		if slices.Contains(enforcers, name) {
			r.satRatio[name] = median(ratios(name, tBare))
			r.satClean[name] = true
			for i := range n {
				r.satClean[name] = r.satClean[name] && clean(res[i]) && clean(rounds[tBare][i])
			}
		}
	}
	r.printf("\n")
}

// cpu reports the CPU each process spent per answered request at
// saturation: a measure of cost that the host's drifting speed moves far
// less than throughput.
func (r *report) cpu(names []string, rounds map[string][]loadgen.Result, used map[string][][]time.Duration) {
	r.printf("## CPU per request at saturation\n\n")
	r.printf("CPU time (user + system, from /proc) each process spent during a target's saturation run, divided by the requests it answered; median round and range. This process holds the load generator, the backend and the in-process targets; – is a process the run does not have.\n\n")
	r.printf("| target | this process µs | enforcer process µs | nats-server µs | total µs |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, name := range names {
		// per[p] is process p's µs per request by round; per[3] their sum.
		per := make([][]float64, 4)
		for i, ri := range rounds[name] {
			if ri.OK() == 0 {
				continue
			}
			total := 0.0
			for p, d := range used[name][i] {
				if d < 0 {
					continue // no such process in this run
				}
				us := float64(d.Microseconds()) / float64(ri.OK())
				per[p] = append(per[p], us)
				total += us
			}
			per[3] = append(per[3], total)
		}
		cells := make([]string, 4)
		for p, xs := range per {
			cells[p] = "–"
			if len(xs) > 0 {
				cells[p] = microsRange(xs)
			}
		}
		r.printf("| %s | %s |\n", name, strings.Join(cells, " | "))
	}
	r.printf("\n")
}

// microsRange is "median (min–max)" of xs, or just the one.
func microsRange(xs []float64) string {
	m := median(xs)
	if len(xs) == 1 {
		return fmt.Sprintf("%.0f", m)
	}
	return fmt.Sprintf("%.0f (%.0f–%.0f)", m, xs[0], xs[len(xs)-1])
}

// medianRound is the index of the round whose by is the median.
func medianRound(res []loadgen.Result, by func(loadgen.Result) float64) int {
	idx := make([]int, len(res))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(by(res[a]), by(res[b])) })
	return idx[len(idx)/2]
}

func p99(r loadgen.Result) float64 { return float64(r.Quantile(.99)) }

// median of xs, which it sorts; the upper middle of an even count.
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// percentRange is "median% (min–max%)" of ratios, or just the one.
func percentRange(xs []float64) string {
	m := median(xs)
	if len(xs) == 1 {
		return fmt.Sprintf("%.0f%%", 100*m)
	}
	return fmt.Sprintf("%.0f%% (%.0f–%.0f%%)", 100*m, 100*xs[0], 100*xs[len(xs)-1])
}

func (r *report) audit(names []string, res map[string]loadgen.Result) {
	r.printf("## What the record costs (open loop, %.0f req/s, %s per target)\n\n", r.opts.auditRate, r.opts.duration)
	r.printf("The enforcer has no audit-off mode by design; the bare proxy and OPA (no decision log) are the audit-less baselines.\n\n")
	r.printf("| target | record | p50 ms | p99 ms | added p50 | added p99 | errors |\n")
	r.printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	what := map[string]string{
		tBare:       "none",
		tOPA:        "none (decision only, no decision log)",
		tRampart:    "JetStream ack (file store, fsync per sync interval)",
		tSyncAlways: "JetStream ack after fsync (sync_always)",
		tSpool:      "local spool, group-committed fsync",
	}
	base := res[tBare]
	for _, name := range names {
		x := res[name]
		r.printf("| %s | %s | %s | %s | %s | %s | %s |\n", name, what[name], ms(x.Quantile(.5)), ms(x.Quantile(.99)),
			signedMS(x.Quantile(.5)-base.Quantile(.5)), signedMS(x.Quantile(.99)-base.Quantile(.99)), errorsOf(x))
		if e := x.FirstErr; e != nil {
			defer r.printf("First error, %s: `%v`\n\n", name, e)
		}
	}
	r.printf("\n")
}

func (r *report) memory(t *target) {
	r.printf("## Targets\n\nMet only where the runs compared had no errors.\n\n| target | measured | met |\n| --- | --- | --- |\n")
	for _, name := range enforcers {
		rounds, ok := r.addedP99[name][targetAddedRate]
		if !ok {
			continue
		}
		a := median(slices.Clone(rounds))
		met := yes(r.clean[name][targetAddedRate] && a < targetAddedP99)
		if a < 0 {
			// The baseline's tail was the worse one: noise decides, not the target.
			met = "inconclusive"
		}
		measured := signedMS(a) + " ms"
		if len(rounds) > 1 {
			measured = fmt.Sprintf("%s ms (%s to %s), median of %d rounds", signedMS(a), signedMS(slices.Min(rounds)), signedMS(slices.Max(rounds)), len(rounds))
		}
		r.printf("| p99 added latency < %s at %d req/s: %s vs %s | %s | %s |\n", ms(targetAddedP99), targetAddedRate, name, baselineOf(name),
			measured, met)
	}
	if rounds, ok := r.addedP99[tRecording][targetAddedRate]; ok {
		r.printf("| for reference, the record alone at %d req/s: %s vs %s, p99 added | %s ms (%s to %s) | – |\n", targetAddedRate, tRecording, tBare,
			signedMS(median(slices.Clone(rounds))), signedMS(slices.Min(rounds)), signedMS(slices.Max(rounds)))
	}
	if _, ok := r.addedP99[tRampart][targetAddedRate]; !ok {
		r.printf("| p99 added latency < %s at %d req/s | not measured (rate not in -rates) | – |\n", ms(targetAddedP99), targetAddedRate)
	}
	for _, name := range enforcers {
		if ratio, ok := r.satRatio[name]; ok {
			r.printf("| saturation ≥ %.0f%% of the bare proxy: %s | %.0f%% | %s |\n", 100*targetSaturation, name, 100*ratio, yes(r.satClean[name] && ratio >= targetSaturation))
		}
	}
	if t != nil {
		m, err := proc.ReadMemory(fmt.Sprint(t.pid))
		if err != nil {
			r.printf("| enforcer process RSS < %d MiB | unreadable: %v | – |\n", targetRSS>>20, err)
		} else {
			r.printf("| enforcer process RSS < %d MiB | VmHWM (peak over the run) %.1f MiB | %s |\n", targetRSS>>20,
				float64(m.HWM)/(1<<20), yes(m.HWM < targetRSS))
		}
		r.printf("\nThe enforcer process's RSS, sampled every 100 ms during its load:\n\n| load | peak RSS MiB |\n| --- | ---: |\n")
		for _, p := range r.phases {
			r.printf("| %s | %.1f |\n", p, float64(r.peakRSS[p])/(1<<20))
		}
	} else {
		r.printf("| enforcer process RSS < %d MiB | not measured (run with -enforcer) | – |\n", targetRSS>>20)
	}
	if self, err := proc.ReadMemory("self"); err == nil {
		js := "two JetStreams"
		if r.opts.natsBin != "" {
			js = "JetStream in nats-server processes of its own"
		}
		r.printf("\nThis process (load generator, backend, proxies, OPA, three in-process enforcers; %s): VmHWM %.0f MiB.\n", js, float64(self.HWM)/(1<<20))
	}
	r.printf("\nRun took %s.\n", time.Since(r.started).Round(time.Second))
}

// clean reports whether every request of res was answered as expected; a
// comparison with failures in it proves nothing either way.
func clean(res loadgen.Result) bool { return res.Errors == 0 && res.Dropped == 0 }

// where is a when cond holds, else b.
func where(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
