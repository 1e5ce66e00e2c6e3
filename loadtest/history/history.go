// Package history writes synthetic audit history straight into ClickHouse
// for the forensic benchmarks: millions of request, decision and response
// events of many tenants, sessions, agents and tools, built in Go and
// inserted in RowBinary over the HTTP interface, several inserts in
// flight, so 100M events land in minutes rather than the days the
// enforcer path would take.
//
// The events have the shape the enforcer writes: each tool call is a
// request, a decision and a response (a denied call's response is the
// enforcer's own 403), linked into per-instance chains by chain.Linker as
// the enforcer links them, with cardinalities set by Config. So `rampart
// verify` finds the record intact, and its cost on real chains can be
// measured.
package history

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Config sets the size and shape of the history.
type Config struct {
	// Events is how many events to write (rounded down to whole calls of 3).
	Events uint64 `yaml:"events"`
	// Tenants is how many tenants share the history. Default 20.
	Tenants uint64 `yaml:"tenants"`
	// Concurrent is how many sessions are open at any moment; each call goes
	// to the next open session in turn. Default 200.
	Concurrent uint64 `yaml:"concurrent"`
	// CallsPerSession is how many tool calls each session makes. Default 20.
	CallsPerSession uint64 `yaml:"calls_per_session"`
	// Agents is how many agent identities each tenant has. Default 50.
	Agents uint64 `yaml:"agents"`
	// Principals is how many users agents act for, per tenant. Default 200.
	Principals uint64 `yaml:"principals"`
	// Tools is how many distinct tools are called (at most len(tools)). Default 12.
	Tools uint64 `yaml:"tools"`
	// Instances is how many enforcer instances (chains) recorded the calls. Default 4.
	Instances uint64 `yaml:"instances"`
	// DenyPermille is how many calls in a thousand policy denies. Default 100.
	DenyPermille uint64 `yaml:"deny_permille"`
	// Start and Span place the calls evenly in [Start, Start+Span).
	// Defaults 2026-11-01 and 30 days.
	Start time.Time     `yaml:"start"`
	Span  time.Duration `yaml:"span"`
}

// The tools, the destination each calls and the class of data it touches.
var (
	tools        = []string{"search", "read_file", "write_file", "shell", "http_get", "send_email", "query_db", "list_repos", "create_issue", "deploy", "read_secret", "summarize"}
	destinations = []string{"search.internal", "files.internal", "files.internal", "runner.internal", "egress.proxy", "mail.internal", "db.internal", "git.internal", "tracker.internal", "deploy.internal", "vault.internal", "llm.internal"}
	dataClasses  = []string{"public", "internal", "internal", "internal", "public", "pii", "pii", "internal", "internal", "internal", "secret", "internal"}
)

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Tenants, 20)
	def(&c.Concurrent, 200)
	def(&c.CallsPerSession, 20)
	def(&c.Agents, 50)
	def(&c.Principals, 200)
	def(&c.Tools, uint64(len(tools)))
	def(&c.Instances, 4)
	def(&c.DenyPermille, 100)
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Span == 0 {
		c.Span = 30 * 24 * time.Hour
	}
}

// Validate checks c after SetDefaults.
func (c Config) Validate() error {
	switch {
	case c.Events < 3:
		return fmt.Errorf("history: events must be at least 3 (one call)")
	case c.Tools > uint64(len(tools)):
		return fmt.Errorf("history: tools must be at most %d", len(tools))
	case c.DenyPermille > 1000:
		return fmt.Errorf("history: deny_permille must be at most 1000")
	case c.Span < time.Second:
		return fmt.Errorf("history: span must be at least a second")
	}
	return nil
}

// Calls is how many tool calls the history holds.
func (c Config) Calls() uint64 { return c.Events / 3 }

// step is the time between consecutive calls, in microseconds.
func (c Config) step() uint64 {
	s := uint64(c.Span.Microseconds()) / c.Calls()
	if s == 0 {
		s = 1
	}
	return s
}

// Session names the session of call number call, and Tenant its tenant, so
// a benchmark can pick real keys without querying for them.
func (c Config) Session(call uint64) (tenant, session string) {
	s := c.session(call)
	return fmt.Sprintf("tenant-%d", s%c.Tenants), fmt.Sprintf("sess-%d", s)
}

// Task names the task of call number call: four sessions share one.
func (c Config) Task(call uint64) string { return fmt.Sprintf("task-%d", c.session(call)/4) }

// session numbers the session of call: Concurrent sessions are open at
// once, each making CallsPerSession calls, the open ones in turn.
func (c Config) session(call uint64) uint64 {
	return (call/c.Concurrent/c.CallsPerSession)*c.Concurrent + call%c.Concurrent
}

// Request names call number call's request id.
func (c Config) Request(call uint64) string { return fmt.Sprintf("req-%d", call) }

// Time is when call number call was made.
func (c Config) Time(call uint64) time.Time {
	return c.Start.Add(time.Duration(call*c.step()) * time.Microsecond)
}

// Inserter inserts rows already encoded in RowBinary, in the order of
// columns, into a table of its database: chstore.Client.InsertRowBinary
// over ClickHouse's HTTP interface, or the benchmark's chDB adapter.
type Inserter interface {
	InsertRowBinary(ctx context.Context, table string, columns []string, rows []byte) error
}

// Options tune how Generate writes.
type Options struct {
	// BatchRows is how many events go in one insert: one block, one part.
	// Default 200,000.
	BatchRows int
	// Inflight is how many inserts run at once. Default 2.
	Inflight int
	// Columns are the columns of events_raw to fill, in ddl.Events order;
	// default all of ddl.Events. A database at an older migration lacks
	// the newest columns, which these events leave empty (no credential,
	// no backend report), so their chain hashes are the same either way.
	Columns []ddl.Column
}

// rowBytes is about the size of one generated event in RowBinary.
const rowBytes = 700

// batch is one insert's rows, encoded; batches are reused.
type batch struct {
	rows []byte
	n    int
}

// Generate writes the whole history into the inserter's events_raw. Each enforcer
// instance's chain is built by its own goroutine, since a chain is
// sequential but chains are independent: it links its events with a real
// chain.Linker, so `rampart verify` finds the record intact, and encodes
// them in RowBinary into reused buffers that opts.Inflight inserts send
// on. progress (which may be nil) hears after every insert.
func Generate(ctx context.Context, ins Inserter, c Config, opts Options, progress func(done, total uint64)) error {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = 200_000
	}
	if opts.Inflight <= 0 {
		opts.Inflight = 2
	}
	if opts.Columns == nil {
		opts.Columns = ddl.Events
	}
	names := ddl.Names(opts.Columns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every batch is full, sending or free: memory is bounded by their number.
	nbatch := int(c.Instances) + opts.Inflight
	free := make(chan *batch, nbatch)
	for i := 0; i < nbatch; i++ {
		free <- &batch{}
	}
	full := make(chan *batch, nbatch)
	var (
		mu    sync.Mutex
		first error
		done  uint64
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	total := c.Calls() * 3
	var senders sync.WaitGroup
	for i := 0; i < opts.Inflight; i++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for b := range full {
				if ctx.Err() == nil {
					if err := ins.InsertRowBinary(ctx, "events_raw", names, b.rows); err != nil {
						fail(fmt.Errorf("history: insert %d events: %w", b.n, err))
					} else {
						mu.Lock()
						done += uint64(b.n)
						if progress != nil {
							progress(done, total)
						}
						mu.Unlock()
					}
				}
				b.rows, b.n = b.rows[:0], 0
				free <- b
			}
		}()
	}
	var chains sync.WaitGroup
	for inst := uint64(0); inst < min(c.Instances, c.Calls()); inst++ {
		chains.Add(1)
		go func() {
			defer chains.Done()
			if err := c.writeChain(ctx, inst, opts.Columns, opts.BatchRows, free, full); err != nil {
				fail(err)
			}
		}()
	}
	chains.Wait()
	close(full)
	senders.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// writeChain builds the events of instance inst's chain, in chain order,
// filling batches from free and sending them to full.
func (c Config) writeChain(ctx context.Context, inst uint64, cols []ddl.Column, batchRows int, free chan *batch, full chan<- *batch) error {
	g := newCallWriter(c, inst, cols)
	var b *batch
	take := func() error {
		select {
		case b = <-free:
			// Sized once for a whole batch: growing it by appends copied
			// every byte several times (the generator's largest cost).
			if cap(b.rows) == 0 {
				b.rows = make([]byte, 0, batchRows*rowBytes)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := take(); err != nil {
		return err
	}
	for call := inst; call < c.Calls(); call += c.Instances {
		b.rows = g.appendCall(b.rows, call)
		b.n += 3
		if b.n >= batchRows {
			full <- b
			if err := take(); err != nil {
				return err
			}
		}
	}
	if b.n > 0 {
		full <- b
	} else {
		free <- b // free holds every batch: this never blocks
	}
	return nil
}

// callWriter builds and encodes the events of one chain. The event and
// its sections are reused from call to call; strings of small
// cardinality come from tables made once.
type callWriter struct {
	c       Config
	cols    []ddl.Column
	link    *chain.Linker
	e       event.Event
	id      event.Identity
	actors  [2]event.Actor
	req     event.Request
	dec     event.Decision
	resp    event.Response
	row     ddl.Row
	scratch []byte

	tenants, agents, planners, principals, policyHashes []string
	startUS, step, policyEvery                          uint64
}

func newCallWriter(c Config, inst uint64, cols []ddl.Column) *callWriter {
	g := &callWriter{
		c:           c,
		cols:        cols,
		link:        chain.NewLinker("enf-"+strconv.FormatUint(inst, 10), "ep-1"),
		startUS:     uint64(c.Start.UnixMicro()),
		step:        c.step(),
		policyEvery: max(c.Calls()/4, 1),
	}
	g.tenants = names("tenant-", c.Tenants)
	g.agents = names("agent-", c.Agents)
	g.planners = names("planner-", 5)
	g.principals = names("user-", c.Principals)
	for v := uint64(0); v <= c.Calls()/g.policyEvery; v++ {
		g.policyHashes = append(g.policyHashes, chain.Prefix+hex16(mix(v, 11)))
	}
	return g
}

func names(prefix string, n uint64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// mix is a 64-bit hash of (v, salt) (SplitMix64's finalizer): the
// deterministic choices of the history (agent, tool, denial, timings).
func mix(v, salt uint64) uint64 {
	z := v*0x9e3779b97f4a7c15 + salt*0xbf58476d1ce4e5b9 + 1
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func hex16(v uint64) string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// str makes a string of prefix and n through the scratch buffer.
func (g *callWriter) str(prefix string, n uint64) string {
	g.scratch = strconv.AppendUint(append(g.scratch[:0], prefix...), n, 10)
	return string(g.scratch)
}

// appendCall appends the request, decision and response of call, linked
// into the chain in that order, to rows.
func (g *callWriter) appendCall(rows []byte, call uint64) []byte {
	c := g.c
	sess := c.session(call)
	agent := mix(sess, 1) % c.Agents
	t := mix(call, 3) % c.Tools
	deny := mix(call, 4)%1000 < c.DenyPermille
	dur := 1_000_000 + mix(call, 6)%50_000_000

	g.actors = [2]event.Actor{
		{Subject: g.planners[agent%5], Issuer: "https://idp.example"},
		{Subject: g.agents[agent], Issuer: "https://idp.example"},
	}
	g.id = event.Identity{
		Subject:       g.principals[mix(sess, 2)%c.Principals],
		Issuer:        "https://idp.example",
		Chain:         g.actors[:],
		SessionID:     g.str("sess-", sess),
		TaskID:        g.str("task-", sess/4), // as Config.Task names it
		SessionSource: "token",
	}
	g.req = event.Request{
		Method:      "POST",
		Host:        destinations[t],
		Path:        "/mcp",
		RPCMethod:   "tools/call",
		RPCKind:     "request",
		Tool:        tools[t],
		ArgsDigest:  chain.Prefix + hex16(mix(call, 7)),
		BodyBytes:   int64(200 + mix(call, 8)%4000),
		Destination: destinations[t],
		DataClass:   dataClasses[t],
	}
	tenant := g.tenants[sess%c.Tenants]
	requestID := g.str("req-", call)
	base := g.startUS + call*g.step
	for k := uint64(0); k < 3; k++ {
		us := base + k*1000
		e := &g.e
		*e = event.Event{
			V:         event.Version,
			Tenant:    tenant,
			RequestID: requestID,
			Identity:  &g.id,
			Request:   &g.req,
		}
		switch k {
		case 0:
			e.Kind = event.KindRequest
		case 1:
			e.Kind = event.KindDecision
			g.dec = event.Decision{
				Effect:     event.EffectAllow,
				PolicyID:   "default",
				RuleID:     "allow-" + tools[t],
				PolicyHash: g.policyHashes[call/g.policyEvery],
				Reason:     "allowed by rule",
				EvalNanos:  int64(1000 + mix(call, 9)%20000),
			}
			if deny {
				g.dec.Effect, g.dec.RuleID, g.dec.Reason = event.EffectDeny, "deny-"+tools[t], "tool not permitted for this agent"
			}
			e.Decision = &g.dec
		case 2:
			e.Kind = event.KindResponse
			us += dur / 1000
			status := 200
			switch {
			case deny:
				status = 403
			case mix(call, 5)%100 < 2:
				status = 500
			}
			g.resp = event.Response{Status: status, DurationNs: int64(dur), Bytes: int64(100 + mix(call, 10)%50000)}
			e.Response = &g.resp
		}
		e.Time = time.UnixMicro(int64(us)).UTC()
		e.ID = hex16(us) + hex16(call*3+k)
		g.link.Link(e)
		g.row = ddl.Row{Event: e, StreamSeq: call*3 + k + 1, CollectedAt: e.Time.Add(time.Second)}
		rows = ddl.AppendRowBinary(rows, g.cols, &g.row)
	}
	return rows
}

// Execer runs one statement.
type Execer interface {
	Exec(ctx context.Context, query string) error
}

// Redeliver inserts a second copy of about one event in permille thousand,
// as a collector that crashed between insert and ack does: the copies stay
// unmerged until ClickHouse merges their parts, and every forensic query
// must still count each event once.
func Redeliver(ctx context.Context, x Execer, db string, columns []string, permille int) error {
	cols := strings.Join(columns, ", ")
	return x.Exec(ctx, fmt.Sprintf("INSERT INTO %s.events_raw (%s) SELECT %s FROM %s.events_raw WHERE cityHash64(event_id) %% 1000 < %d",
		db, cols, cols, db, permille))
}
