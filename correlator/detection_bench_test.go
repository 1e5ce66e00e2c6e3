package correlator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/natscluster"
	"github.com/rampart-io/rampart/testkit/poll"
)

// load publishes n tool-call decision events asynchronously at about rate
// per second (0: as fast as JetStream takes them), over 8 tenants and 50
// agents, each acting for one of 13 users; every 3rd is a denial, so the
// pack's denial rules fire every few hundred events. It returns the rate
// reached.
func load(js jetstream.JetStream, n, rate int) (float64, error) {
	var ids event.IDSource
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		now := time.Now()
		tenant := fmt.Sprintf("t%d", i%8)
		effect, tool := event.EffectAllow, "search"
		if i%3 == 0 {
			effect, tool = event.EffectDeny, fmt.Sprintf("admin_%d", i%7)
		}
		e := &event.Event{V: event.Version, ID: ids.New(now), Kind: event.KindDecision, Time: now, Tenant: tenant,
			Instance: "enf", Seq: uint64(i + 1), RequestID: fmt.Sprint(i),
			Identity: &event.Identity{Subject: fmt.Sprintf("user:%d", i%50%13), SessionID: fmt.Sprintf("s%d", i/800),
				Chain: []event.Actor{{Subject: fmt.Sprintf("agent:%d", i%50)}}},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: tool},
			Decision: &event.Decision{Effect: effect, RuleID: "r"}}
		data, _ := event.Encode(e)
		subj, _ := subject.For(tenant, string(event.KindDecision))
		if _, err := js.PublishAsync(subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return 0, errors.New("publishes not acknowledged")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// loadHere runs load in the benchmark's process: for a stream filled
// before the timer starts.
func loadHere(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	if _, err := load(js, n, 0); err != nil {
		b.Fatal(err)
	}
}

// generatorEnv, when set, makes the test binary a load generator
// (runGenerator) instead of running tests: the latency benchmark's load
// comes from another process, so the correlator's process is measured
// alone.
const generatorEnv = "RAMPART_BENCH_GENERATOR"

type generatorSpec struct {
	NATS string
	N    int
	Rate int
}

// runGenerator publishes the spec's load and prints the rate reached.
func runGenerator(spec string) int {
	var g generatorSpec
	if err := json.Unmarshal([]byte(spec), &g); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	nc, err := nats.Connect(g.NATS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reached, err := load(js, g.N, g.Rate)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(reached)
	return 0
}

// generate runs the load in a child process and returns the rate it
// reached.
func generate(b *testing.B, url string, n, rate int) float64 {
	b.Helper()
	spec, _ := json.Marshal(generatorSpec{NATS: url, N: n, Rate: rate})
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), generatorEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("generator: %v", err)
	}
	reached, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("generator said %q: %v", out, err)
	}
	return reached
}

// natsServer is a nats-server process.
type natsServer struct {
	url string
	pid int
}

// cpu is the server process's CPU time so far, user and system, from
// /proc (in clock ticks of 10 ms).
func (n natsServer) cpu(b *testing.B) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", n.pid, stat)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// natsProcess runs a JetStream nats-server process (not embedded), so the
// server's work is not the benchmark process's; stopped with the test.
func natsProcess(b *testing.B) natsServer {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(natscluster.Binary(b), "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", b.TempDir())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	poll.Until(b, 10*time.Second, func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.AccountInfo(context.Background())
		return err
	})
	return natsServer{url: url, pid: cmd.Process.Pid}
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the correlator process's CPU per event, the events
// one core would take at that cost, and the server process's CPU per
// event.
func reportCPU(b *testing.B, cpu, server time.Duration, n int) {
	per := cpu.Seconds() / float64(n)
	b.ReportMetric(per*1e6, "cpu-µs/event")
	b.ReportMetric(1/per, "events/core-s")
	b.ReportMetric(server.Seconds()/float64(n)*1e6, "server-cpu-µs/event")
}

func (r *rig) waitConsumed(b *testing.B, consumer string, total uint64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := r.js.Consumer(context.Background(), stream.Events, consumer)
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.AckFloor.Stream >= total {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("consumer never caught up")
}

// BenchmarkCorrelatorThroughput: b.N events already in the stream (a
// nats-server process), then one correlator consumes them; the time is
// until the measured consumer has acknowledged them all. Reports events/s
// and the benchmark process's CPU per event over that time (the
// correlator's: the server runs apart, the load was published before), each
// a ratio to the others of the same run:
//   - sessions: detection off; the sessions consumer, into ClickHouse.
//   - detect=empty: the detection consumer with an engine of no rules:
//     the pipeline (fetch, decode, partition, ack) without rules.
//   - detect=shipped: the detection consumer with the whole shipped pack.
func BenchmarkCorrelatorThroughput(b *testing.B) {
	empty, err := detect.Merge()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"sessions", "detect=empty", "detect=shipped"} {
		b.Run(mode, func(b *testing.B) {
			srv := natsProcess(b)
			r := rigOn(b, srv.url)
			loadHere(b, r.js, b.N)
			b.ResetTimer()
			start, cpu0, srv0 := time.Now(), cpuTime(b), srv.cpu(b)
			switch mode {
			case "sessions":
				r.startWith(func(c *correlator.Config) { c.Detect.Shipped = false })
				r.waitConsumed(b, "correlator", uint64(b.N))
			case "detect=empty":
				r.startWith(func(*correlator.Config) {}, correlator.WithDetector(detect.NewEngine(empty, detect.Options{})))
				r.waitConsumed(b, "correlator-detect", uint64(b.N))
			case "detect=shipped":
				r.startWith(func(*correlator.Config) {})
				r.waitConsumed(b, "correlator-detect", uint64(b.N))
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			reportCPU(b, cpuTime(b)-cpu0, srv.cpu(b)-srv0, b.N)
		})
	}
}

// BenchmarkAlertLatency: b.N events published at a fixed rate, by a
// generator process, to a nats-server process, while one correlator (this
// process) runs the whole shipped pack; the latency of an alert is from
// the publish of the event that completed it (the alert's last evidence
// time) to JetStream's timestamp of the stored alert. offered-ev/s is the
// rate the generator reached; the CPU is this process's, the correlator's.
func BenchmarkAlertLatency(b *testing.B) {
	for _, rate := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			srv := natsProcess(b)
			r := rigOn(b, srv.url)
			r.startWith(func(*correlator.Config) {}) // the shipped pack
			b.ResetTimer()
			cpu0, srv0 := cpuTime(b), srv.cpu(b)
			offered := generate(b, r.url, b.N, rate)
			r.waitConsumed(b, "correlator-detect", uint64(b.N))
			cpu, server := cpuTime(b)-cpu0, srv.cpu(b)-srv0
			b.StopTimer()
			b.ReportMetric(offered, "offered-ev/s")
			reportCPU(b, cpu, server, b.N)
			lat := r.alertLatencies(b)
			if len(lat) == 0 {
				if b.N >= 1000 { // smaller runs (the first, b.N = 1) complete no window
					b.Fatal("no alerts")
				}
				return
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat)), "alerts")
		})
	}
}

func (r *rig) alertLatencies(b *testing.B) []time.Duration {
	ctx := context.Background()
	s, _ := r.js.Stream(ctx, stream.Events)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Prefix + "*.alert"}})
	if err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out
		}
		md, _ := m.Metadata()
		evs, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, md.Timestamp.Sub(evs[0].Alert.Last))
	}
}
