// Package audit publishes the enforcer's events to JetStream, where the
// collector picks them up. It is the enforcer's write-ahead record: Publish
// returns only when every event is durably recorded — acknowledged by
// JetStream, or, when JetStream is slow or away and the spool is enabled,
// fsynced to the local spool and replayed in order later — and the
// enforcer forwards nothing it could not record.
//
// Every event is chained (package chain): the publisher gives each its
// instance's epoch, a dense sequence number and its predecessor's hash, and
// signs a checkpoint of the chain's head periodically, after every so many
// events, when idle, and at shutdown.
//
// Calls are group-committed: while one group of calls is being recorded,
// the calls that arrive join the next, which is linked and sent as a whole
// when it settles. Under load one JetStream message then carries many
// calls' events; an idle publisher sends a call at once.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Config locates JetStream and bounds how long a request waits for it.
type Config struct {
	// URL is the NATS server, or a cluster's seed servers: comma-separated
	// or a YAML list. Default nats://127.0.0.1:4222. The connection
	// reconnects forever, to whichever server of the cluster answers.
	URL stream.URLs `yaml:"url"`
	// PublishTimeout bounds the wait for JetStream to acknowledge the events
	// of one group of requests; a request may first wait for the group
	// ahead of it. Default 2s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// Stream is the configuration the events stream is ensured with at
	// start. It must match the cluster's: ensuring updates the stream.
	// Default stream.Defaults(), a single replica.
	Stream *stream.Config `yaml:"stream"`
	// OnUnavailable is what happens to a request whose events JetStream
	// cannot acknowledge within PublishTimeout: "refuse" (503, the default:
	// fail closed) or "spool" (record them in the local spool, then forward).
	// When the spool is full, requests are refused either way.
	OnUnavailable string `yaml:"on_unavailable"`
	// Spool is the local write-ahead log used when OnUnavailable is
	// "spool". Its dir must be on local disk and private to this instance.
	Spool spool.Config `yaml:"spool"`
	// Checkpoint configures the signed checkpoints of the event chain.
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
}

// Values of OnUnavailable.
const (
	Refuse = "refuse"
	Spool  = "spool"
)

// CheckpointConfig configures signed checkpoints.
type CheckpointConfig struct {
	// KeyFile is a PEM PKCS#8 Ed25519 private key (`rampart keygen` makes
	// one). Without it an ephemeral key is generated at start: the chain is
	// still checked, but signatures cannot be verified by anyone else.
	KeyFile string `yaml:"key_file"`
	// Interval is how often a checkpoint is published when events were
	// recorded since the last one. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Every publishes a checkpoint after this many events. Default 1000.
	Every int `yaml:"every"`
	// Idle is how often a checkpoint is published with no new events, so
	// a truncated tail is caught by the next one. Default 30s.
	Idle time.Duration `yaml:"idle"`
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.URL == "" {
		c.URL = nats.DefaultURL
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 2 * time.Second
	}
	if c.Stream == nil {
		d := stream.Defaults()
		c.Stream = &d
	}
	if c.OnUnavailable == "" {
		c.OnUnavailable = Refuse
	}
	c.Spool.SetDefaults()
	if c.Checkpoint.Interval == 0 {
		c.Checkpoint.Interval = time.Second
	}
	if c.Checkpoint.Every == 0 {
		c.Checkpoint.Every = 1000
	}
	if c.Checkpoint.Idle == 0 {
		c.Checkpoint.Idle = 30 * time.Second
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.URL.Validate() != nil:
		return fmt.Errorf("audit: %w", c.URL.Validate())
	case c.PublishTimeout < 0:
		return errors.New("audit: publish_timeout must not be negative")
	case c.OnUnavailable != Refuse && c.OnUnavailable != Spool:
		return fmt.Errorf("audit: on_unavailable must be %q or %q, not %q", Refuse, Spool, c.OnUnavailable)
	case c.OnUnavailable == Spool && c.Spool.Dir == "":
		return errors.New("audit: on_unavailable: spool needs spool.dir")
	case c.Checkpoint.Interval < 0 || c.Checkpoint.Idle < 0 || c.Checkpoint.Every < 0:
		return errors.New("audit: checkpoint interval, idle and every must not be negative")
	}
	return nil
}

// ErrUnavailable wraps every failure to record events: the caller must not
// act on a request whose events it could not record.
var ErrUnavailable = errors.New("audit: unavailable")

// Publisher stamps, chains and records events. It is safe for concurrent use.
type Publisher struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	ids     event.IDSource
	signer  chain.Signer
	spool   *spool.Spool // nil unless OnUnavailable is "spool"
	metrics metrics

	// mu orders linking with handing events on (to JetStream or the
	// spool), so the record's order is the chain's order.
	mu               sync.Mutex
	linker           *chain.Linker
	unrecorded       []uint64 // failed since the last checkpoint
	checkpointed     uint64   // seq of the last checkpoint
	lastCheckpointAt time.Time
	spooling         bool      // the spool holds records: new ones queue behind them
	forming          [2]*group // calls waiting for the next launch, by may-spool
	inflight         int       // groups launched and not yet settled

	spoolPos spool.Position // last position acknowledged; the replayer's own

	nudge  chan struct{} // wakes the background loop
	stop   context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

// Connect connects to NATS, ensures the streams exist, opens the spool (when
// configured) and returns a Publisher for the named instance, starting a new
// epoch of its chain. The connection reconnects forever.
func Connect(ctx context.Context, instance string, cfg Config, log *slog.Logger) (*Publisher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if instance == "" {
		return nil, errors.New("audit: instance name is required")
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "audit")
	signer, err := chain.LoadSigner(cfg.Checkpoint.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.Checkpoint.KeyFile == "" {
		log.Warn("checkpoints signed with an ephemeral key; set checkpoint.key_file so signatures can be verified", "key_id", signer.KeyID)
	}
	p := &Publisher{cfg: cfg, log: log, signer: signer, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	p.linker = chain.NewLinker(instance, p.ids.New(time.Now()))
	p.lastCheckpointAt = time.Now()
	if cfg.OnUnavailable == Spool {
		if p.spool, err = spool.Open(cfg.Spool); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		// Records left by an earlier run are replayed before anything new.
		p.spooling = p.spool.Len() > 0
	}
	p.nc, err = nats.Connect(string(cfg.URL), append(stream.ConnectOptions("rampart-enforcer "+instance),
		// No buffering while disconnected: a publish then fails at once
		// (spooled, or refused) instead of reaching the stream later for
		// a request that was refused.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		// Asynchronous errors (a watch's consumer lost while disconnected)
		// are logged, not printed: the watches resume by themselves.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Debug("nats asynchronous error", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
			p.wake()
		}))...,
	)
	if err != nil {
		p.closeSpool()
		return nil, fmt.Errorf("audit: connect %s: %w", cfg.URL, err)
	}
	if p.js, err = jetstream.New(p.nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout)); err == nil {
		_, err = stream.Ensure(ctx, p.js, *cfg.Stream)
	}
	if err != nil {
		p.nc.Close()
		p.closeSpool()
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := p.instrument(); err != nil {
		p.nc.Close()
		p.closeSpool()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.background(bg)
	log.Info("audit chain started", "instance", instance, "epoch", p.linker.Epoch(), "on_unavailable", cfg.OnUnavailable)
	return p, nil
}

// JetStream is the publisher's JetStream client, for the enforcer's other
// state in JetStream (tasks, revocations) over the same connection.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// SpoolBytes is how much the spool holds for JetStream (0 without a spool).
func (p *Publisher) SpoolBytes() int64 {
	if p.spool == nil {
		return 0
	}
	return p.spool.Len()
}

// Epoch is the epoch of this publisher's chain.
func (p *Publisher) Epoch() string { return p.linker.Epoch() }

// Publish stamps, chains and records events and returns once all of them
// are durably recorded, or with an error wrapping ErrUnavailable. Each event
// gets V, Instance, Epoch, the next Seq and Prev, and ID and Time when
// unset; events of one call get consecutive sequence numbers. Events that
// could not be recorded keep their numbers — the gap is reported in the
// next checkpoint as unrecorded — because an event whose fate is unknown
// may still reach the stream. The calls of one group share its outcome.
func (p *Publisher) Publish(ctx context.Context, events ...*event.Event) error {
	return p.PublishMode(ctx, "", events...)
}

// PublishMode is Publish with OnUnavailable overridden for these events
// ("" keeps the configured one): a policy can make its most sensitive
// decisions fail closed while others may spool, or the reverse. Spooling
// needs a configured spool; without one, "spool" refuses.
func (p *Publisher) PublishMode(ctx context.Context, mode string, events ...*event.Event) error {
	if mode == "" {
		mode = p.cfg.OnUnavailable
	}
	if mode != Refuse && mode != Spool {
		return fmt.Errorf("audit: unknown mode %q", mode)
	}
	g, err := p.join(events, mode == Spool)
	if err != nil {
		return err
	}
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		// The group goes on without this caller, who must not act on
		// events it did not see recorded.
		return fmt.Errorf("%w: waiting for the record: %w", ErrUnavailable, context.Cause(ctx))
	}
}

// message is events ready for the wire: one JetStream message carrying
// the events with sequence numbers first to first+events-1.
type message struct {
	first  uint64
	events int
	msg    *nats.Msg
}

// maxGroupsInFlight bounds the groups being recorded at once. Calls that
// arrive meanwhile join the next group, so under load one JetStream
// message (one store, one acknowledgement) carries the events of many
// calls, and when idle a call is sent at once.
const maxGroupsInFlight = 1

// group is the events of calls that are linked, sent and recorded
// together, and share the outcome.
type group struct {
	events   []*event.Event
	maySpool bool
	done     chan struct{} // closed when err is set
	err      error
}

// join stamps and validates events and adds them to the group forming for
// their mode, launching it at once when no group is in flight; it
// returns the group to wait for.
func (p *Publisher) join(events []*event.Event, maySpool bool) (*group, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stamp(events); err != nil {
		return nil, err
	}
	i := 0
	if maySpool {
		i = 1
	}
	g := p.forming[i]
	if g == nil {
		g = &group{maySpool: maySpool, done: make(chan struct{})}
		p.forming[i] = g
	}
	g.events = append(g.events, events...)
	if p.inflight < maxGroupsInFlight {
		p.launch()
	}
	return g, nil
}

// PublishBatch records events at once, without joining a group, in the
// configured mode: for a caller that batches its own events and that no
// request waits on (response events), so a request never waits behind
// them. Otherwise it is Publish.
func (p *Publisher) PublishBatch(ctx context.Context, events ...*event.Event) error {
	p.mu.Lock()
	if err := p.stamp(events); err != nil {
		p.mu.Unlock()
		return err
	}
	pd, err := p.linkAndSend(events, p.cfg.OnUnavailable == Spool)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.record(ctx, pd)
}

// linkAndSend links validated events, bundles them and hands them on; it
// returns what must still be awaited. Called with p.mu held.
func (p *Publisher) linkAndSend(events []*event.Event, maySpool bool) (*pending, error) {
	for _, e := range events {
		p.linker.Link(e)
	}
	msgs, err := bundle(events)
	if err != nil {
		return nil, err // unreachable for validated events; the seqs stay a gap
	}
	p.wakeForCheckpoint()
	return p.send(msgs, maySpool), nil
}

// stamp fills in and validates events before they are linked, so a bad
// event costs no sequence number. Called with p.mu held.
func (p *Publisher) stamp(events []*event.Event) error {
	for _, e := range events {
		e.V = event.Version
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if e.ID == "" {
			e.ID = p.ids.New(e.Time)
		}
		e.Instance, e.Seq, e.Epoch = "-", 1, "" // placeholders Link replaces
		if err := e.Validate(); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if _, err := subject.For(e.Tenant, string(e.Kind)); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

// wakeForCheckpoint wakes the background loop when enough events were
// linked for a checkpoint. Called with p.mu held.
func (p *Publisher) wakeForCheckpoint() {
	if p.linker.Seq()-p.checkpointed >= uint64(p.cfg.Checkpoint.Every) {
		p.wake()
	}
}

// launch links, encodes and sends the forming groups, and records each in
// the background. Linking at launch, under the lock, keeps the record's
// order the chain's. Called with p.mu held.
func (p *Publisher) launch() {
	for i, g := range p.forming {
		if g == nil {
			continue
		}
		p.forming[i] = nil
		pd, err := p.linkAndSend(g.events, g.maySpool)
		if err != nil {
			g.err = err
			close(g.done)
			continue
		}
		p.inflight++
		go p.settle(g, pd)
	}
}

// settle records a launched group, tells its callers, and launches the
// groups that formed meanwhile.
func (p *Publisher) settle(g *group, pd *pending) {
	g.err = p.record(context.Background(), pd)
	close(g.done)
	p.mu.Lock()
	p.inflight--
	if p.inflight < maxGroupsInFlight {
		p.launch()
	}
	p.mu.Unlock()
}

// maxBundle bounds the body of a message that bundles several events, well
// under the 1 MB a NATS server accepts by default. A larger event travels
// alone, as it would unbundled.
const maxBundle = 64 << 10

// bundle encodes linked events into messages: consecutive events of one
// tenant share a message (a request and its decision; a batch of
// responses), published on the subject of its first event under that
// event's id, so a republished message is stored once.
func bundle(events []*event.Event) ([]message, error) {
	msgs := make([]message, 0, 1)
	var body []byte
	start := 0 // of the events in body
	flush := func(end int) {
		first := events[start]
		subj, _ := subject.For(first.Tenant, string(first.Kind))
		m := nats.NewMsg(subj)
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, first.ID)
		msgs = append(msgs, message{first: first.Seq, events: end - start, msg: m})
		body, start = nil, end
	}
	for i, e := range events {
		if i > start && e.Tenant != events[start].Tenant {
			flush(i)
		}
		kept := len(body)
		next, err := event.AppendMessage(body, e)
		if err != nil {
			return nil, fmt.Errorf("audit: encode event %s: %w", e.ID, err)
		}
		if i > start && len(next) > maxBundle {
			body = next[:kept]
			flush(i)
			if next, err = event.AppendMessage(body, e); err != nil {
				return nil, fmt.Errorf("audit: encode event %s: %w", e.ID, err)
			}
		}
		body = next
	}
	flush(len(events))
	return msgs, nil
}

func countEvents(msgs []message) int {
	n := 0
	for _, m := range msgs {
		n += m.events
	}
	return n
}

// pending is a hand-off in flight: to JetStream (futures) or the spool (wait).
type pending struct {
	maySpool bool
	msgs     []message
	futures  []jetstream.PubAckFuture
	sendErr  error
	spooled  func() error
}

// send hands msgs to the spool when it holds records (to keep order) or
// NATS is away, else to JetStream asynchronously. Events that may not be
// spooled are refused at once when the spool is in the way. Called with
// p.mu held.
func (p *Publisher) send(msgs []message, maySpool bool) *pending {
	pd := &pending{msgs: msgs, maySpool: maySpool}
	if p.spool != nil && (p.spooling || p.nc.Status() != nats.CONNECTED) {
		if !maySpool {
			pd.sendErr = errors.New("JetStream is unavailable and these events may not be spooled")
			return pd
		}
		pd.spooled = p.enqueue(msgs)
		return pd
	}
	for _, m := range msgs {
		f, err := p.js.PublishMsgAsync(m.msg)
		if err != nil {
			pd.sendErr = err
			break
		}
		pd.futures = append(pd.futures, f)
	}
	return pd
}

// enqueue queues msgs in the spool and returns the wait for their fsync.
// Called with p.mu held, so the spool's order is the chain's.
func (p *Publisher) enqueue(msgs []message) func() error {
	records := make([][]byte, len(msgs))
	for i, m := range msgs {
		records[i] = spoolRecord(m.msg)
	}
	p.spooling = true
	wait := p.spool.Enqueue(records...)
	p.wake()
	return wait
}

// record waits for pd to be durable; on failure it spools or refuses.
func (p *Publisher) record(ctx context.Context, pd *pending) error {
	if pd.spooled != nil {
		return p.spooledResult(pd, pd.spooled())
	}
	err := pd.sendErr
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
		defer cancel()
	wait:
		for _, f := range pd.futures {
			select {
			case <-f.Ok():
			case e := <-f.Err():
				err = e
				break wait
			case <-ctx.Done():
				err = fmt.Errorf("waiting for acks: %w", context.Cause(ctx))
				break wait
			}
		}
	}
	if err == nil {
		p.metrics.published.Add(context.Background(), int64(countEvents(pd.msgs)))
		return nil
	}
	if p.spool != nil && pd.maySpool {
		// The fate of some of these is unknown: spooling republishes them
		// under the same message ids, which JetStream de-duplicates.
		p.mu.Lock()
		wait := p.enqueue(pd.msgs)
		p.mu.Unlock()
		return p.spooledResult(pd, wait())
	}
	p.lose(pd.msgs)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (p *Publisher) spooledResult(pd *pending, err error) error {
	if err != nil {
		p.lose(pd.msgs)
		return fmt.Errorf("%w: spool: %w", ErrUnavailable, err)
	}
	p.metrics.spooled.Add(context.Background(), int64(countEvents(pd.msgs)))
	return nil
}

// lose notes events that could not be recorded, for the next checkpoint.
func (p *Publisher) lose(msgs []message) {
	p.mu.Lock()
	for _, m := range msgs {
		for i := range m.events {
			p.unrecorded = append(p.unrecorded, m.first+uint64(i))
		}
	}
	p.mu.Unlock()
	p.metrics.unrecorded.Add(context.Background(), int64(countEvents(msgs)))
	p.log.Error("events not recorded", "events", countEvents(msgs), "first_seq", msgs[0].first)
}

func (p *Publisher) wake() {
	select {
	case p.nudge <- struct{}{}:
	default:
	}
}

// Close publishes a final checkpoint, replays what it can of the spool, and
// closes the connection and the spool. What stays in the spool is replayed
// by the next run.
func (p *Publisher) Close() {
	p.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*p.cfg.PublishTimeout)
		defer cancel()
		if err := p.checkpoint(ctx); err != nil {
			p.log.Warn("final checkpoint not recorded", "err", err)
		}
		p.stop()
		<-p.done
		if p.spool != nil {
			p.replay(ctx)
		}
		_ = p.metrics.reg.Unregister()
		p.nc.Close()
		p.closeSpool()
	})
}

func (p *Publisher) closeSpool() {
	if p.spool != nil {
		_ = p.spool.Close()
	}
}
