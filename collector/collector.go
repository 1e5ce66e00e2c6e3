// Package collector moves audit events from JetStream into ClickHouse. It
// reads batches from a durable consumer, checks and enriches each event,
// inserts the batch, and acknowledges it only after ClickHouse accepted it.
// Events that can never be stored go to the dead-letter stream with the
// reason; a redelivered batch collapses in ClickHouse on the event id.
package collector

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/component/lag"
	"github.com/rampart-io/rampart/component/memlimit"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// Config configures a collector.
type Config struct {
	// Source is where events are read: NATS, consumer and batching.
	stream.Source `yaml:",inline"`
	// ClickHouse is where events land.
	ClickHouse chstore.Config `yaml:"clickhouse"`
	// Inventory is the agent inventory each stored row is enriched from
	// (owner, team, purpose, risk tier, environment, registered).
	Inventory inventory.Config `yaml:"inventory"`
	// MemoryLimitMiB is the soft memory limit `rampart collector` gives
	// the Go runtime (GOMEMLIMIT wins; -1: none): collection holds the
	// heap under it when a backlog is drained, instead of the process
	// growing past its container's limit. Keep it some 30 MiB below that
	// limit, and above the batches in flight: up to 2 x (fetch_ahead + 1)
	// of them, each of at most batch_max_bytes of messages (about 130 MB
	// of live heap at the defaults' peak, BENCHMARKS.md).
	MemoryLimitMiB memlimit.MiB `yaml:"memory_limit_mib"`
}

// Defaults returns the single-node configuration: batches of 5,000
// messages, four fetched ahead while one is stored, so a backlog goes in
// blocks of up to 25,000 messages (BENCHMARKS.md: ClickHouse's CPU per
// row halves from blocks of 2,000 rows to 10,000 and more), under a soft
// memory limit of DefaultMemoryLimitMiB.
func Defaults() Config {
	src := stream.DefaultSource("collector")
	src.BatchSize = 5000
	src.FetchAhead = 4
	return Config{Source: src, ClickHouse: chstore.Defaults(), Inventory: inventory.Defaults(),
		MemoryLimitMiB: DefaultMemoryLimitMiB}
}

// DefaultMemoryLimitMiB is the collector's soft memory limit unless its
// configuration names one. Draining a backlog at the default batch size
// its live heap peaks near 130 MiB, and its RSS sits about 30 MiB above
// the limit (BENCHMARKS.md).
const DefaultMemoryLimitMiB memlimit.MiB = 224

// ApplyMemoryLimit gives the process c's memory limit, the default when
// c names none (0), collecting only as the heap nears it.
func (c Config) ApplyMemoryLimit() bool {
	m := c.MemoryLimitMiB
	if m == 0 {
		m = DefaultMemoryLimitMiB
	}
	return m.Apply(true)
}

// Validate checks c.
func (c Config) Validate() error {
	if err := c.Source.Validate(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if err := c.Inventory.Validate(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if err := c.MemoryLimitMiB.Validate(); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	return c.ClickHouse.Validate()
}

// Collector is a running JetStream-to-ClickHouse pipeline.
type Collector struct {
	cfg Config
	log *slog.Logger
	in  *stream.Reader
	ch  *chstore.Client
	inv *inventory.Inventory

	events      metric.Int64Counter // by outcome: stored, dead_lettered
	gapped      metric.Int64Counter
	insertTime  metric.Float64Histogram
	gaps        gaps
	lagCallback metric.Registration
}

var (
	outcomeStored       = metric.WithAttributes(attribute.String("outcome", "stored"))
	outcomeDeadLettered = metric.WithAttributes(attribute.String("outcome", "dead_lettered"))
)

// New connects to NATS and ClickHouse, ensures the streams and applies
// pending migrations.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	inv, err := inventory.New(cfg.Inventory, "collector", log)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	ch, err := chstore.OpenMigrated(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	in, err := stream.Open(ctx, cfg.Source, "rampart-collector")
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("collector: %w", err)
	}
	c := &Collector{cfg: cfg, log: log.With("component", "collector"), in: in, ch: ch, inv: inv}
	if err := c.instrument(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// instrument registers the collector's metrics with the global OpenTelemetry
// meter provider (a no-op unless the process installed one).
func (c *Collector) instrument() error {
	m := otel.Meter("github.com/rampart-io/rampart/collector")
	var err error
	if c.events, err = m.Int64Counter("rampart.collector.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events read from JetStream, by outcome")); err != nil {
		return err
	}
	if c.gapped, err = m.Int64Counter("rampart.collector.sequence_gaps", metric.WithUnit("{event}"),
		metric.WithDescription("Sequence numbers a chain (an enforcer or correlator instance's) skipped, as events arrived")); err != nil {
		return err
	}
	if c.insertTime, err = m.Float64Histogram("rampart.collector.insert.duration", metric.WithUnit("s"),
		metric.WithDescription("Time for ClickHouse to accept one batch")); err != nil {
		return err
	}
	// Counters start at zero, so that a series exists before the first
	// event and an alert on increase() sees the first one.
	ctx := context.Background()
	c.events.Add(ctx, 0, outcomeStored)
	c.events.Add(ctx, 0, outcomeDeadLettered)
	c.gapped.Add(ctx, 0)
	c.lagCallback, err = lag.Observe(m, "rampart.collector.lag",
		"Messages (of one or more events) in the stream this collector has not yet stored", c.in.Lag)
	return err
}

// Run collects until ctx ends, keeping the inventory current meanwhile.
func (c *Collector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reloaded := make(chan struct{})
	go func() { defer close(reloaded); _ = c.inv.Run(ctx) }()
	defer func() { cancel(); <-reloaded }()
	return stream.RunPipelined(ctx, c.in, c.log, c.prepare, mergeRows, c.commit)
}

// Close releases the connections.
func (c *Collector) Close() {
	if c.lagCallback != nil {
		_ = c.lagCallback.Unregister()
	}
	c.in.Close()
	c.ch.Close()
}

// rows is a batch ready to insert: its events' rows, in RowBinary when
// ClickHouse's HTTP interface is configured (the cheaper path), else as
// values for the native protocol. Merged batches keep their RowBinary
// apart, one block each, sent together without being copied into one.
type rows struct {
	binary [][]byte
	values [][]any
	n      int        // rows
	stored []position // for the gap check, in stream order
	dead   int        // events dead-lettered
}

// rowBuffers recycles the RowBinary of committed batches: about 400
// bytes a row, a batch's worth each.
var rowBuffers = sync.Pool{New: func() any { return new([]byte) }}

// prepare decodes and enriches one batch into rows, dead-lettering the
// messages that can never be stored. It may run ahead of commit.
func (c *Collector) prepare(ctx context.Context, b stream.Batch) (*rows, error) {
	now := time.Now()
	out := &rows{stored: make([]position, 0, 2*len(b))}
	binary := c.ch.HTTPAddr() != ""
	var block []byte
	if binary {
		block = (*rowBuffers.Get().(*[]byte))[:0]
	}
	var row ddl.Row
	for _, m := range b {
		seq := stream.StreamSeq(m)
		events, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			if err := c.deadLetter(ctx, m, seq, err); err != nil {
				return nil, err
			}
			out.dead += bytes.Count(m.Data(), []byte{'\n'}) + 1 // its events, one a line
			continue
		}
		for _, e := range events {
			row = ddl.Row{Event: e, StreamSeq: seq, CollectedAt: now, Agent: c.inv.Agent(e)}
			if binary {
				block = ddl.AppendRowBinary(block, ddl.Events, &row)
			} else {
				out.values = append(out.values, ddl.Values(ddl.Events, &row))
			}
			out.n++
			out.stored = append(out.stored, position{chainID{e.Instance, e.Epoch}, e.Seq})
		}
	}
	if binary {
		out.binary = [][]byte{block}
	}
	return out, nil
}

// mergeRows appends b's rows to a's: batches waiting when an insert
// begins go in with it, so a backlog is stored in larger blocks, each
// costing ClickHouse a part per table however few rows it holds.
func mergeRows(a, b *rows) *rows {
	a.binary = append(a.binary, b.binary...)
	a.values = append(a.values, b.values...)
	a.n += b.n
	a.stored = append(a.stored, b.stored...)
	a.dead += b.dead
	return a
}

// commit inserts a prepared batch. It fails as a whole, so the batch is
// redelivered as a whole; rows already inserted collapse on their event id.
func (c *Collector) commit(ctx context.Context, b stream.Batch, r *rows) error {
	start := time.Now()
	var err error
	switch {
	case r.n == 0:
	case r.binary != nil:
		err = c.ch.InsertRowBinaryBlocks(ctx, "events_raw", ddl.EventColumns, r.binary)
	default:
		err = c.ch.Insert(ctx, "events_raw", ddl.EventColumns, r.values)
	}
	if err != nil {
		// Not recycled: the transport may still be reading them.
		return err
	}
	for i := range r.binary {
		rowBuffers.Put(&r.binary[i])
	}
	c.insertTime.Record(ctx, time.Since(start).Seconds())
	c.flagGaps(ctx, r.stored)
	c.events.Add(ctx, int64(r.n), outcomeStored)
	c.events.Add(ctx, int64(r.dead), outcomeDeadLettered)
	c.log.Debug("batch stored", "events", r.n, "messages", len(b))
	return nil
}

// flagGaps notes chains that skipped sequence numbers in a stored batch.
func (c *Collector) flagGaps(ctx context.Context, stored []position) {
	for _, p := range stored {
		if n := c.gaps.observe(p); n > 0 {
			c.gapped.Add(ctx, int64(n))
			c.log.Warn("sequence gap", "instance", p.chain.instance, "epoch", p.chain.epoch, "missing_before", p.seq, "missing", n)
		}
	}
}

// Dead-letter headers: why an event was refused and where it came from.
const (
	HeaderReason        = "Rampart-DLQ-Reason"
	HeaderSubject       = "Rampart-DLQ-Subject"
	HeaderStreamSeq     = "Rampart-DLQ-Stream-Seq"
	deadLetterMsgIDBase = "dlq-"
)

func (c *Collector) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, reason error) error {
	out := nats.NewMsg(stream.DeadLetterPrefix + c.cfg.Consumer)
	out.Data = m.Data()
	out.Header.Set(HeaderReason, reason.Error())
	out.Header.Set(HeaderSubject, m.Subject())
	out.Header.Set(HeaderStreamSeq, fmt.Sprint(seq))
	// Redelivery of the same poison message is stored once.
	out.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s%s-%d", deadLetterMsgIDBase, c.cfg.Consumer, seq))
	if _, err := c.in.JetStream().PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("collector: dead-letter seq %d: %w", seq, err)
	}
	c.log.Warn("event dead-lettered", "stream_seq", seq, "reason", reason)
	return nil
}
