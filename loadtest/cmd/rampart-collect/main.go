// Command rampart-collect measures the collector as deployed: a nats-server
// process holding a backlog of delegated tool calls (request and decision
// bundled per message, as the enforcer publishes them) drained by one or
// more `rampart collector` processes, with their default configuration,
// into ClickHouse 18.16. In the same run it measures the ceiling: the same
// rows inserted natively by a bare client, no JetStream, so the collector
// is reported as a fraction of what the table itself takes. After each
// drain it publishes at a fixed rate for a while and reports the lag.
//
//	go run ./cmd/rampart-collect -rampart ../bin/rampart -nats-server /path/to/nats-server
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/loadtest/proc"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

type options struct {
	rampart, natsBin string
	calls            int
	collectors       []int
	rate             int
	sustain          time.Duration
	batchSize        int
	memoryLimit      int
	instances        int
	chAddr, chHTTP   string
	chPid            int // the private server's, 0 for -clickhouse
	dir              string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rampart-collect:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var collectors string
	flag.StringVar(&o.rampart, "rampart", "", "the rampart binary whose collector is measured (required)")
	flag.StringVar(&o.natsBin, "nats-server", "", "a nats-server binary (required)")
	flag.IntVar(&o.calls, "calls", 200_000, "delegated tool calls in the backlog, two events each")
	flag.StringVar(&collectors, "collectors", "1,2", "collector processes sharing the durable consumer, one drain per entry")
	flag.IntVar(&o.rate, "rate", 100_000, "events/s published after each drain while the collectors run (0: no sustained phase)")
	flag.DurationVar(&o.sustain, "sustain", 20*time.Second, "how long the sustained phase publishes")
	flag.IntVar(&o.batchSize, "batch-size", 0, "the collectors' batch_size; 0 keeps their default")
	flag.IntVar(&o.memoryLimit, "memory-limit-mib", 0, "the collectors' memory_limit_mib; 0 keeps their default")
	flag.IntVar(&argsBytes, "args-bytes", 0, "recorded tool arguments per call, in bytes (a message carries them twice); 0: none, as a call whose policy records none")
	flag.IntVar(&o.instances, "instances", 8, "enforcer instances (chains) the calls are spread over")
	flag.StringVar(&o.chAddr, "clickhouse", "", "ClickHouse native address; empty starts a private clickhouse-server 18.16")
	flag.StringVar(&o.chHTTP, "clickhouse-http", "", "its HTTP address, given with -clickhouse")
	flag.Parse()
	if o.rampart == "" || o.natsBin == "" {
		return fmt.Errorf("-rampart and -nats-server are required")
	}
	for _, f := range strings.Split(collectors, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-collectors: %q is not a count", f)
		}
		o.collectors = append(o.collectors, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "rampart-collect-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.dir = dir
	if o.chAddr == "" {
		srv, err := chserver.Start(ctx, filepath.Join(dir, "clickhouse"))
		if err != nil {
			return err
		}
		defer srv.Stop()
		o.chAddr, o.chHTTP, o.chPid = srv.Addr, srv.HTTPAddr, srv.Pid()
	}
	fmt.Printf("rampart-collect %s: %d calls (%d events, arguments of %d bytes), collectors %v, batch_size %s, memory_limit_mib %s, rate %d events/s for %s\n\n",
		time.Now().UTC().Format(time.RFC3339), o.calls, 2*o.calls, argsBytes, o.collectors, orDefault(o.batchSize), orDefault(o.memoryLimit), o.rate, o.sustain)

	c, err := measureCeilings(ctx, o)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	ceiling := c.best()
	fmt.Printf("| run | events | events/s | of the ceiling | collector CPU µs/event | nats-server CPU µs/event | ClickHouse CPU µs/event | lag p99 | lag max | sustained events/s | collector peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	fmt.Printf("| bare client, native protocol (driver row appends), blocks of %d rows | %d | %.0f | %.2f | – | – | – | – | – | – | – |\n", ceilingBlock(), 2*o.calls, c.native, c.native/ceiling)
	fmt.Printf("| bare client, RowBinary over HTTP, blocks of %d rows | %d | %.0f | %.2f | – | – | – | – | – | – | – |\n", ceilingBlock(), 2*o.calls, c.rowBinary, c.rowBinary/ceiling)
	fmt.Printf("| server copy, INSERT SELECT table to table (no client) | %d | %.0f | %.2f | – | – | – | – | – | – | – |\n", 2*o.calls, c.copy, c.copy/ceiling)
	for _, n := range o.collectors {
		r, err := drain(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%d collectors: %w", n, err)
		}
		fmt.Printf("| %d collector process(es), one durable consumer | %d | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %.0f MiB |\n", n, r.events, r.rate, r.rate/ceiling,
			perEvent(r.cpu[0], r.events), perEvent(r.cpu[1], r.events), perEvent(r.cpu[2], r.events),
			dur(r.lagP99), dur(r.lagMax), sustained(r.sustained, o.rate), float64(r.peakRSS)/(1<<20))
	}
	return nil
}

func orDefault(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

func perEvent(cpu time.Duration, events int) string {
	if cpu < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(cpu.Microseconds())/float64(events))
}

func dur(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func sustained(rate float64, target int) string {
	if target == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f of %d", rate, target)
}

// calls makes n delegated tool calls: a request and its decision each, as
// an enforcer records them (two actors, a session and a task).
func calls(n int, tenant string) [][2]*event.Event {
	out := make([][2]*event.Event, n)
	now := time.Now()
	for i := range out {
		at := now.Add(time.Duration(i) * time.Microsecond)
		out[i] = call(i, at, tenant)
	}
	return out
}

// argsBytes is the size of each call's recorded arguments (-args-bytes):
// large ones are what an agent sending the largest calls a record keeps
// puts on the pipeline.
var argsBytes int

// recordedArgs are the arguments every call records: a JSON string of
// argsBytes, or none.
var recordedArgs = sync.OnceValue(func() json.RawMessage {
	if argsBytes <= 0 {
		return nil
	}
	return json.RawMessage(`"` + strings.Repeat("a", max(argsBytes-2, 0)) + `"`)
})

func call(i int, at time.Time, tenant string) [2]*event.Event {
	id := &event.Identity{Subject: "user:alice@acme.example", Issuer: "https://idp.acme.example",
		Chain:     []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:web-researcher-" + strconv.Itoa(i%50)}},
		SessionID: "sess-" + strconv.Itoa(i%500), TaskID: "task-" + strconv.Itoa(i%2000)}
	req := &event.Request{Method: "POST", Host: "tools.acme.internal", Path: "/mcp", RPCMethod: "tools/call",
		Headers: map[string]string{"user-agent": "agent-sdk/1.2"}, Tool: "search", ArgsDigest: "sha256:9f86d081884c7d65", BodyBytes: 312, Args: recordedArgs()}
	rid := "req-" + strconv.Itoa(i)
	trace := event.Trace{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	return [2]*event.Event{
		{Kind: event.KindRequest, Time: at, Tenant: tenant, RequestID: rid, Trace: trace, Identity: id, Request: req},
		{Kind: event.KindDecision, Time: at, Tenant: tenant, RequestID: rid, Trace: trace, Identity: id, Request: req,
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "acme-tools", RuleID: "allow-search",
				PolicyHash: "sha256:2c26b46b68ffc68f", Reason: "read-only tool", EvalNanos: 4210}},
	}
}

// ceilingBlock is the bare client's insert block in rows: large, as a
// bare bulk load would use, so the ceiling is the table's, not the block
// size's; but at most 64 MiB, so that rows holding large arguments fit
// the server's memory for one query.
func ceilingBlock() int { return min(50_000, (64<<20)/(500+argsBytes)) }

// ceilings are the table's own insert rates for the backlog's rows, no
// JetStream: a bare client over the native protocol (the driver's row
// appends), a bare client sending RowBinary over HTTP, and the server
// copying the rows table to table (no client at all).
type ceilings struct{ native, rowBinary, copy float64 }

// best is the highest rate a client reached: the collector's ceiling.
func (c ceilings) best() float64 { return max(c.native, c.rowBinary) }

// measureCeilings inserts the events of o.calls calls each way, in large
// blocks, and returns rows/s. The rows are built and encoded before the
// clock starts: what is timed is the driver, the wire and the server.
func measureCeilings(ctx context.Context, o options) (ceilings, error) {
	var out ceilings
	ch, err := openDB(ctx, o, "ceiling")
	if err != nil {
		return out, err
	}
	defer ch.Close()
	now := time.Now()
	var rows [][]any
	var blocks [][]byte
	var block []byte
	seq := uint64(0)
	for _, c := range calls(o.calls, "acme") {
		for _, e := range c {
			seq++
			e.V, e.ID, e.Instance, e.Epoch, e.Seq = event.Version, fmt.Sprintf("ceiling-%d", seq), "ceiling", "e1", seq
			r := &ddl.Row{Event: e, StreamSeq: seq, CollectedAt: now}
			rows = append(rows, ddl.Values(ddl.Events, r))
			block = ddl.AppendRowBinary(block, ddl.Events, r)
			if seq%uint64(ceilingBlock()) == 0 {
				blocks, block = append(blocks, block), nil
			}
		}
	}
	if len(block) > 0 {
		blocks = append(blocks, block)
	}
	start := time.Now()
	for lo := 0; lo < len(rows); lo += ceilingBlock() {
		if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows[lo:min(lo+ceilingBlock(), len(rows))]); err != nil {
			return out, err
		}
	}
	out.native = float64(len(rows)) / time.Since(start).Seconds()
	if err := ch.Exec(ctx, "TRUNCATE TABLE ceiling.events_raw"); err != nil {
		return out, err
	}
	start = time.Now()
	for _, b := range blocks {
		if err := ch.InsertRowBinary(ctx, "events_raw", ddl.EventColumns, b); err != nil {
			return out, err
		}
	}
	out.rowBinary = float64(len(rows)) / time.Since(start).Seconds()
	if err := ch.Exec(ctx, "CREATE TABLE ceiling.copy AS ceiling.events_raw"); err != nil {
		return out, err
	}
	start = time.Now()
	if err := ch.Exec(ctx, fmt.Sprintf("INSERT INTO ceiling.copy SELECT * FROM ceiling.events_raw SETTINGS max_block_size = %d", ceilingBlock())); err != nil {
		return out, err
	}
	out.copy = float64(len(rows)) / time.Since(start).Seconds()
	return out, nil
}

func openDB(ctx context.Context, o options, db string) (*chstore.Client, error) {
	cfg := chstore.Defaults()
	cfg.Addr, cfg.HTTPAddr, cfg.Database = chstore.AddrList(o.chAddr), chstore.AddrList(o.chHTTP), db
	admin, err := chstore.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		admin.Close()
		return nil, err
	}
	admin.Close()
	return chstore.OpenMigrated(ctx, cfg)
}

// drainResult is one drain and its sustained phase.
type drainResult struct {
	events         int
	rate           float64 // backlog events/s
	lagP99, lagMax time.Duration
	sustained      float64 // events/s published and stored in the sustained phase
	// cpu is what the drain cost, user and system: the collector
	// processes together, nats-server, ClickHouse (-1 when unknown).
	cpu [3]time.Duration
	// peakRSS is the largest VmHWM of the collector processes, over the
	// drain and the sustained phase.
	peakRSS int64
}

// drain fills a fresh nats-server with the backlog, then times n collector
// processes storing it into a fresh database.
func drain(ctx context.Context, o options, n int) (drainResult, error) {
	res := drainResult{lagP99: -1, lagMax: -1}
	ns, err := proc.StartNATS(ctx, o.natsBin, filepath.Join(o.dir, fmt.Sprintf("nats-%d", n)), false)
	if err != nil {
		return res, err
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		return res, err
	}
	src, err := newSource(nc, o.instances)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := publishBacklog(ctx, src, o.calls); err != nil {
		return res, err
	}
	total, bytes, err := streamEvents(ctx, js)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "%d collectors: backlog of %d messages (%d bytes each on average) published in %s\n",
		n, total, bytes/max(total, 1), time.Since(start).Round(time.Millisecond))

	db := fmt.Sprintf("collect_%d", n)
	ch, err := openDB(ctx, o, db)
	if err != nil {
		return res, err
	}
	defer ch.Close()
	conf, err := collectorConfig(o, ns.ClientURL(), db)
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var pids []string
	for i := range n {
		cmd := exec.CommandContext(cctx, o.rampart, "collector", "-config", conf)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		logf, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("collector-%d-%d.log", n, i)))
		if err != nil {
			return res, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return res, err
		}
		pids = append(pids, strconv.Itoa(cmd.Process.Pid))
		wg.Go(func() { _ = cmd.Wait(); logf.Close() })
	}
	cons, err := waitConsumer(ctx, js)
	if err != nil {
		return res, err
	}
	// The clock starts at the first acknowledgement, so process start and
	// migrations are not counted; sampled every 20 ms. So does the CPU meter.
	chPid := ""
	if o.chPid != 0 {
		chPid = strconv.Itoa(o.chPid)
	}
	var meter *proc.CPUMeter
	first, last, err := waitAcked(ctx, cons, 0, total, nil, func() {
		meter = proc.StartCPU(append(pids, strconv.Itoa(ns.Pid()), chPid)...)
	})
	if err != nil {
		return res, err
	}
	used := meter.Used()
	res.cpu = [3]time.Duration{0, used[n], used[n+1]}
	for _, u := range used[:n] {
		if u < 0 {
			res.cpu[0] = -1
			break
		}
		res.cpu[0] += u
	}
	events, err := storedEvents(ctx, ch)
	if err != nil {
		return res, err
	}
	res.events = events
	res.rate = float64(events) / last.Sub(first).Seconds()
	fmt.Fprintf(os.Stderr, "%d collectors: %d events stored in %s\n", n, events, last.Sub(first).Round(time.Millisecond))
	if o.rate > 0 {
		if err := sustain(ctx, o, src, js, cons, ch, events, &res); err != nil {
			return res, err
		}
	}
	for _, pid := range pids {
		m, err := proc.ReadMemory(pid)
		if err != nil {
			return res, err
		}
		res.peakRSS = max(res.peakRSS, m.HWM)
	}
	return res, nil
}

// collectorConfig writes the collectors' configuration: the defaults but
// for where NATS and ClickHouse are (and batch_size when given).
func collectorConfig(o options, natsURL, db string) (string, error) {
	cfg := fmt.Sprintf("nats_url: %q\nclickhouse:\n  addr: %q\n  http_addr: %q\n  database: %q\n", natsURL, o.chAddr, o.chHTTP, db)
	if o.batchSize > 0 {
		cfg += fmt.Sprintf("batch_size: %d\n", o.batchSize)
	}
	if o.memoryLimit != 0 {
		cfg += fmt.Sprintf("memory_limit_mib: %d\n", o.memoryLimit)
	}
	path := filepath.Join(o.dir, db+".yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// source publishes calls as enforcers do: each call's request and
// decision chained by one of several instances and bundled in one message
// under the request's id, published asynchronously with a bounded window
// of unacknowledged publishes (what an enforcer fleet amounts to; one
// enforcer waits for each of its publishes, and a fleet has many).
// Checkpoints are left out: the collector stores them as any event.
type source struct {
	js      jetstream.JetStream
	linkers []*chain.Linker
	ids     event.IDSource
	next    int
}

func newSource(nc *nats.Conn, instances int) (*source, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	s := &source{js: js}
	for i := range instances {
		s.linkers = append(s.linkers, chain.NewLinker(fmt.Sprintf("enf-%d", i), fmt.Sprintf("epoch-%d", time.Now().UnixNano())))
	}
	return s, nil
}

// publish sends call i, stamped at, from the next instance in turn.
func (s *source) publish(i int, at time.Time) error {
	c := call(i, at, "acme")
	l := s.linkers[s.next%len(s.linkers)]
	s.next++
	var body []byte
	for _, e := range c {
		e.V, e.ID = event.Version, s.ids.New(at)
		l.Link(e)
		var err error
		if body, err = event.AppendMessage(body, e); err != nil {
			return err
		}
	}
	subj, err := subject.For(c[0].Tenant, string(c[0].Kind))
	if err != nil {
		return err
	}
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, c[0].ID)
	for {
		// A full window waits for acknowledgements, as a fleet's enforcers
		// wait for theirs.
		_, err = s.js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
	}
}

// wait returns once every publish so far is acknowledged.
func (s *source) wait(ctx context.Context) error {
	select {
	case <-s.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishBacklog publishes n calls, one message each.
func publishBacklog(ctx context.Context, src *source, n int) error {
	now := time.Now()
	for i := range n {
		if err := src.publish(i, now.Add(time.Duration(i)*time.Microsecond)); err != nil {
			return err
		}
	}
	return src.wait(ctx)
}

// publishPaced publishes calls at rate events/s (two a call) for d, in
// ticks of 10 ms, each call stamped when it is published, and returns the
// events published.
func publishPaced(ctx context.Context, src *source, rate int, d time.Duration) (int, error) {
	const tick = 10 * time.Millisecond
	start := time.Now()
	calls := 0
	for now := start; now.Sub(start) < d; now = time.Now() {
		// Catch up to the schedule: a late tick publishes what it owes.
		owed := int(float64(rate) / 2 * now.Sub(start).Seconds())
		for ; calls < owed; calls++ {
			if err := src.publish(calls, time.Now()); err != nil {
				return 2 * calls, err
			}
		}
		select {
		case <-ctx.Done():
			return 2 * calls, ctx.Err()
		case <-time.After(tick):
		}
	}
	return 2 * calls, src.wait(ctx)
}

// streamEvents is how many messages the events stream holds, and their
// bytes as the stream counts them.
func streamEvents(ctx context.Context, js jetstream.JetStream) (msgs, bytes uint64, err error) {
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.State.LastSeq, info.State.Bytes, nil
}

func waitConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	for {
		c, err := js.Consumer(ctx, stream.Events, "collector")
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitAcked samples the consumer every 20 ms until its ack floor reaches
// upTo, and returns when the floor first passed from (calling onFirst
// then) and when it reached upTo. Given published (stream seq -> publish time, in order), each
// sample also records the age of the oldest unacknowledged message.
func waitAcked(ctx context.Context, c jetstream.Consumer, from, upTo uint64, lag *lagSamples, onFirst func()) (first, last time.Time, err error) {
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return first, last, err
		}
		now := time.Now()
		floor := info.AckFloor.Stream
		if first.IsZero() && floor > from {
			first = now
			if onFirst != nil {
				onFirst()
			}
		}
		if lag != nil {
			lag.sample(now, floor)
		}
		if floor >= upTo && info.NumAckPending == 0 {
			return first, now, nil
		}
		select {
		case <-ctx.Done():
			return first, last, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func storedEvents(ctx context.Context, ch *chstore.Client) (int, error) {
	rows, err := ch.Query(ctx, "SELECT uniqExact(event_id) FROM "+ch.Database()+".events_raw")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(rows[0][0])
}

// lagSamples holds when each stream sequence was published (sampled from
// the stream's last sequence) and, per consumer sample, the age of the
// oldest message the collectors had not acknowledged.
type lagSamples struct {
	mu   sync.Mutex
	pubs []pubMark // in order of seq and time
	ages []time.Duration
}

type pubMark struct {
	seq uint64
	at  time.Time
}

func (l *lagSamples) published(at time.Time, lastSeq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.pubs); n == 0 || l.pubs[n-1].seq < lastSeq {
		l.pubs = append(l.pubs, pubMark{lastSeq, at})
	}
}

// sample records the lag at now, the ack floor then: the age of the
// oldest unacknowledged message, by the first publish mark that covers it.
func (l *lagSamples) sample(now time.Time, floor uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.pubs, floor+1, func(m pubMark, s uint64) int {
		if m.seq < s {
			return -1
		}
		if m.seq > s {
			return 1
		}
		return 0
	})
	if i == len(l.pubs) {
		l.ages = append(l.ages, 0) // nothing published is unacknowledged
		return
	}
	l.ages = append(l.ages, now.Sub(l.pubs[i].at))
}

func (l *lagSamples) quantiles() (p99, maxAge time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := slices.Clone(l.ages)
	slices.Sort(a)
	if len(a) == 0 {
		return 0, 0
	}
	return a[(len(a)*99+99)/100-1], a[len(a)-1]
}

// sustain publishes o.rate events/s for o.sustain with the collectors
// running, sampling the stream's last sequence and the consumer's ack
// floor every 20 ms, and reports the lag of the oldest unacknowledged
// message (p99 and max over the samples) until the last is stored.
func sustain(ctx context.Context, o options, src *source, js jetstream.JetStream, cons jetstream.Consumer, ch *chstore.Client, before int, res *drainResult) error {
	from, _, err := streamEvents(ctx, js)
	if err != nil {
		return err
	}
	lag := &lagSamples{}
	lag.published(time.Now(), from)
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var sampled sync.WaitGroup
	sampled.Go(func() {
		for pctx.Err() == nil {
			if seq, _, err := streamEvents(pctx, js); err == nil {
				lag.published(time.Now(), seq)
			}
			select {
			case <-pctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	watching := make(chan error, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		_, _, err := waitAcked(wctx, cons, from, ^uint64(0), lag, nil)
		watching <- err
	}()
	start := time.Now()
	published, err := publishPaced(pctx, src, o.rate, o.sustain)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	upTo, _, err := streamEvents(ctx, js)
	if err != nil {
		return err
	}
	lag.published(time.Now(), upTo)
	stopPub()
	sampled.Wait()
	// Wait for the last one stored, still sampling the lag.
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream >= upTo {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopWatch()
	<-watching
	res.lagP99, res.lagMax = lag.quantiles()
	res.sustained = float64(published) / elapsed.Seconds()
	stored, err := storedEvents(ctx, ch)
	if err != nil {
		return err
	}
	if stored < before+published {
		return fmt.Errorf("sustained phase: %d events stored of %d", stored-before, published)
	}
	return nil
}
