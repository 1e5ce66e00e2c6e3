package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Source is the configuration every consumer of the events stream shares
// (the collector and the correlator embed it).
type Source struct {
	// NATSURL is the JetStream server to read from, or a cluster's seed
	// servers: comma-separated or a YAML list. Reconnects forever.
	NATSURL URLs `yaml:"nats_url"`
	// Consumer is the durable consumer name; processes sharing it share the work.
	Consumer string `yaml:"consumer"`
	// Deliver is where a newly created consumer starts: "all" retained
	// events, or only "new" ones. An existing consumer keeps its position.
	Deliver string `yaml:"deliver"`
	// BatchSize bounds messages per batch, and so unacknowledged messages in
	// memory; a message holds one event or a bundle of at most 64 KiB.
	BatchSize int `yaml:"batch_size"`
	// BatchMaxBytes bounds the bytes of a batch's messages as well as
	// their number, so what is held in flight, up to 2 × (fetch_ahead + 1)
	// batches (see ConsumePipelined), is bounded whatever size clients made
	// their calls. A message larger still is fetched alone.
	// It must exceed the NATS server's max_payload by 64 KiB (the
	// message's subject and reply count too): a message larger than the
	// bound could never be delivered, and would hold up the rest.
	BatchMaxBytes int `yaml:"batch_max_bytes"`
	// FetchAhead is how many batches are fetched and prepared while the
	// one before them is being handled, for a consumer whose handling
	// tolerates batches completed out of order (the collector's does; see
	// ConsumePipelined). 0 handles one batch at a time. Above 0, the
	// consumer lets batch_size × (fetch_ahead + 1) × 4 messages await
	// their acks, room for four processes sharing it.
	FetchAhead int `yaml:"fetch_ahead"`
	// BatchWait is how long to wait to fill a batch before handling what came.
	BatchWait time.Duration `yaml:"batch_wait"`
	// RetryDelay spaces retries of a batch that failed.
	RetryDelay time.Duration `yaml:"retry_delay"`
	// Stream tunes the streams, which every consumer ensures exist.
	Stream Config `yaml:"stream"`
}

// DefaultSource returns the single-node source for the named consumer.
func DefaultSource(consumer string) Source {
	return Source{
		NATSURL:   nats.DefaultURL,
		Consumer:  consumer,
		Deliver:   DeliverAll,
		BatchSize: 1000,
		// 4,600 messages of the 1.8 KB a delegated call takes
		// (BENCHMARKS.md); 128 of the largest bundles.
		BatchMaxBytes: 8 << 20,
		BatchWait:     500 * time.Millisecond,
		RetryDelay:    time.Second,
		Stream:        Defaults(),
	}
}

// Validate checks s.
func (s Source) Validate() error {
	switch {
	case s.NATSURL.Validate() != nil:
		return fmt.Errorf("nats_url: %w", s.NATSURL.Validate())
	case s.Consumer == "":
		return errors.New("consumer is required")
	case s.Deliver != DeliverAll && s.Deliver != DeliverNew:
		return fmt.Errorf("deliver must be %q or %q, not %q", DeliverAll, DeliverNew, s.Deliver)
	case s.BatchSize < 1 || s.BatchSize > 100000:
		return fmt.Errorf("batch_size %d out of range [1, 100000]", s.BatchSize)
	case s.BatchMaxBytes < minBatchBytes || s.BatchMaxBytes > maxBatchBytes:
		return fmt.Errorf("batch_max_bytes %d out of range [%d, %d]", s.BatchMaxBytes, minBatchBytes, maxBatchBytes)
	case s.FetchAhead < 0 || s.FetchAhead > 16:
		return fmt.Errorf("fetch_ahead %d out of range [0, 16]", s.FetchAhead)
	case s.BatchWait <= 0 || s.RetryDelay <= 0:
		return errors.New("batch_wait and retry_delay must be positive")
	}
	return nil
}

// The range of batch_max_bytes: NATS's default max_payload, and a bound
// far past any batch worth holding.
const (
	minBatchBytes = 1 << 20
	maxBatchBytes = 1 << 30
)

// sharers is how many processes on one consumer MaxAckPending leaves room
// for when batches are fetched ahead: the bound is the consumer's, not
// each process's.
const sharers = 4

// MaxAckPending is the consumer's bound on messages delivered and not
// yet acknowledged, across the processes sharing it: a batch, or every
// batch in flight of each of four sharers.
func (s Source) MaxAckPending() int {
	if s.FetchAhead == 0 {
		return s.BatchSize
	}
	return s.BatchSize * (s.FetchAhead + 1) * sharers
}

// Reader is a connection to JetStream that consumes the events stream in batches.
type Reader struct {
	src      Source
	nc       *nats.Conn
	js       jetstream.JetStream
	consumer jetstream.Consumer
}

// Open connects to NATS (reconnecting forever), ensures the streams and
// creates (or binds to) the durable consumer, so that from its return on
// no event is missed, whatever the consumer's deliver policy.
func Open(ctx context.Context, src Source, clientName string) (*Reader, error) {
	if err := src.Validate(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(string(src.NATSURL), ConnectOptions(clientName)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", src.NATSURL, err)
	}
	// A message fills at most max_payload, plus its subject and reply.
	if largest := nc.MaxPayload() + 64<<10; int64(src.BatchMaxBytes) < largest {
		nc.Close()
		return nil, fmt.Errorf("batch_max_bytes %d is below %d, the server's max_payload plus 64 KiB: a message that large could never be delivered",
			src.BatchMaxBytes, largest)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = Ensure(ctx, js, src.Stream)
	}
	var cons jetstream.Consumer
	if err == nil {
		cons, err = Durable(ctx, js, src.Consumer, src.Deliver, src.MaxAckPending(), 30*time.Second)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Reader{src: src, nc: nc, js: js, consumer: cons}, nil
}

// JetStream is the reader's JetStream context, for publishing side records
// such as dead letters.
func (r *Reader) JetStream() jetstream.JetStream { return r.js }

// Consumer is the reader's durable consumer, for its position (the ack
// floor a correlator replays up to when it rebuilds its state).
func (r *Reader) Consumer() jetstream.Consumer { return r.consumer }

// Run hands batches to h until ctx ends; see ConsumeBatches. It returns nil
// when ctx was canceled.
func (r *Reader) Run(ctx context.Context, log *slog.Logger, h Handler) error {
	err := ConsumeBatches(ctx, r.consumer, r.batchOptions(log), h)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (r *Reader) batchOptions(log *slog.Logger) BatchOptions {
	return BatchOptions{Size: r.src.BatchSize, MaxBytes: r.src.BatchMaxBytes, MaxWait: r.src.BatchWait, RetryDelay: r.src.RetryDelay, Logger: log}
}

// RunPipelined is Run with the handler in two steps, prepare and commit,
// up to the source's FetchAhead batches prepared ahead and, with merge,
// merged into the next commit; see
// ConsumePipelined. With FetchAhead 0 each batch is prepared and committed
// before the next is fetched. It returns nil when ctx was canceled.
func RunPipelined[P any](ctx context.Context, r *Reader, log *slog.Logger,
	prepare func(context.Context, Batch) (P, error), merge func(P, P) P, commit func(context.Context, Batch, P) error) error {
	o := r.batchOptions(log)
	var err error
	if r.src.FetchAhead == 0 {
		err = ConsumeBatches(ctx, r.consumer, o, func(ctx context.Context, b Batch) error {
			p, err := prepare(ctx, b)
			if err != nil {
				return err
			}
			return commit(ctx, b, p)
		})
	} else {
		err = ConsumePipelined(ctx, r.consumer, o, r.src.FetchAhead, prepare, merge, commit)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Lag is how many events the consumer has not yet finished: not delivered
// plus delivered but unacknowledged.
func (r *Reader) Lag(ctx context.Context) (int64, error) {
	info, err := r.consumer.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// Close closes the connection.
func (r *Reader) Close() { r.nc.Close() }
