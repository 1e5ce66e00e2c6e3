package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Batch is a run of messages fetched together, in stream order.
type Batch []jetstream.Msg

// Handler processes a batch. Returning nil acknowledges every message in it;
// an error leaves them all unacknowledged, to be redelivered later, so a
// handler must be idempotent over redelivery.
type Handler func(ctx context.Context, b Batch) error

// BatchOptions bound a consuming loop.
type BatchOptions struct {
	Size     int           // messages per batch at most
	MaxBytes int           // their bytes at most (subjects and replies count); 0: no bound
	MaxWait  time.Duration // how long to wait to fill a batch
	// RetryDelay is how long failed messages wait before redelivery.
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// ConsumeBatches fetches batches from c and hands each to h until ctx ends.
// The ack is synchronous, so when the handler's effect is durable and the
// function moves on, JetStream has recorded the ack too. As in
// ConsumePipelined, a batch being handled when ctx ends is finished and
// acknowledged within commitGrace, so it is not stored twice.
func ConsumeBatches(ctx context.Context, c jetstream.Consumer, o BatchOptions, h Handler) error {
	log := o.logger()
	finishing, stop := lingering(ctx, commitGrace)
	defer stop()
	for ctx.Err() == nil {
		b, ok := fetch(ctx, c, o, log)
		if !ok {
			continue
		}
		if err := h(finishing, b); err != nil {
			retry(ctx, b, o, log, err)
			continue
		}
		ack(finishing, b, log)
	}
	return ctx.Err()
}

// ConsumePipelined is ConsumeBatches with the handler in two steps, so
// that up to ahead batches are fetched and prepared while the one before
// them is committed: the fetch and prepare of one goroutine overlap the
// commit (a database's round trip) of another. A batch is acknowledged once
// committed, in fetch order; a batch that fails either step is left to be
// redelivered while the later ones go on, so the handler must tolerate
// both redelivery and batches stored out of order. The consumer's
// MaxAckPending must leave room for ahead+1 batches in flight.
//
// With merge, batches already prepared when a commit begins are merged
// into it, so a backlog is committed in larger blocks (up to ahead+1
// batches) while light traffic still commits each batch as it comes.
// In flight at most: the ahead+1 of a commit, ahead more prepared behind
// it, and one being fetched.
func ConsumePipelined[P any](ctx context.Context, c jetstream.Consumer, o BatchOptions, ahead int,
	prepare func(context.Context, Batch) (P, error), merge func(P, P) P, commit func(context.Context, Batch, P) error) error {
	log := o.logger()
	type prepared struct {
		b Batch
		p P
	}
	ready := make(chan prepared, max(ahead, 0))
	go func() {
		defer close(ready)
		for ctx.Err() == nil {
			b, ok := fetch(ctx, c, o, log)
			if !ok {
				continue
			}
			p, err := prepare(ctx, b)
			if err != nil {
				retry(ctx, b, o, log, err)
				continue
			}
			select {
			case ready <- prepared{b, p}:
			case <-ctx.Done():
				release(b)
				return
			}
		}
	}()
	// A commit under way when ctx ends is finished and acknowledged,
	// within commitGrace: stopped halfway, its rows could be stored and
	// the batch still redelivered, storing them twice.
	finishing, stop := lingering(ctx, commitGrace)
	defer stop()
	for x := range ready {
		if ctx.Err() != nil {
			release(x.b) // prepared, never to be committed here
			continue
		}
		for more := merge != nil; more; {
			select {
			case y, ok := <-ready:
				if !ok {
					more = false
					break
				}
				x.b, x.p = append(x.b, y.b...), merge(x.p, y.p)
			default:
				more = false
			}
		}
		if err := commit(finishing, x.b, x.p); err != nil {
			retry(ctx, x.b, o, log, err)
			continue
		}
		ack(finishing, x.b, log)
	}
	return ctx.Err()
}

// commitGrace bounds how long a commit under way may go on once the
// consumer is stopped.
const commitGrace = 10 * time.Second

// lingering is a context that ends grace after ctx does.
func lingering(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var t *time.Timer
	var mu sync.Mutex
	unhook := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		t = time.AfterFunc(grace, cancel)
	})
	return c, func() {
		unhook()
		mu.Lock()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

func (o BatchOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// fetch reads the next batch; false when there was none or the fetch
// failed (after waiting RetryDelay).
func fetch(ctx context.Context, c jetstream.Consumer, o BatchOptions, log *slog.Logger) (Batch, bool) {
	size, opts := o.Size, []jetstream.FetchOpt{jetstream.FetchMaxWait(o.MaxWait)}
	if o.MaxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(o.MaxBytes))
	}
	b, early := fetchOnce(ctx, c, size, opts, o, log)
	if len(b) == 0 && early && o.MaxBytes > 0 {
		// The server ends a byte-bounded fetch at once when the next
		// message is larger than the bound (a 409, which the client
		// reports as no error): fetched again without one, alone, it
		// cannot hold up every message behind it.
		log.Warn("a message larger than batch_max_bytes; fetching it alone", "batch_max_bytes", o.MaxBytes)
		b, _ = fetchOnce(ctx, c, 1, []jetstream.FetchOpt{jetstream.FetchMaxWait(o.MaxWait)}, o, log)
	}
	return b, len(b) > 0
}

// fetchOnce is one pull request; early reports that it ended, without an
// error, well before its wait was up.
func fetchOnce(ctx context.Context, c jetstream.Consumer, size int, opts []jetstream.FetchOpt, o BatchOptions, log *slog.Logger) (b Batch, early bool) {
	start := time.Now()
	mb, err := c.Fetch(size, opts...)
	if err != nil {
		log.Warn("fetch failed", "err", err)
		sleep(ctx, o.RetryDelay)
		return nil, false
	}
	for m := range mb.Messages() {
		b = append(b, m)
	}
	if err := mb.Error(); err != nil {
		if !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("fetch ended early", "err", err, "messages", len(b))
		}
		return b, false
	}
	return b, time.Since(start) < o.MaxWait/2
}

// release hands an unfinished batch back for immediate redelivery, to
// this process or another sharing the consumer, rather than after the
// ack wait.
func release(b Batch) {
	for _, m := range b {
		_ = m.Nak()
	}
}

// retry leaves a failed batch to be redelivered after RetryDelay, and
// waits as long before going on.
func retry(ctx context.Context, b Batch, o BatchOptions, log *slog.Logger, err error) {
	log.Warn("batch failed; will be redelivered", "err", err, "messages", len(b))
	for _, m := range b {
		_ = m.NakWithDelay(o.RetryDelay)
	}
	sleep(ctx, o.RetryDelay)
}

// ack acknowledges every message of b, the last synchronously, so the
// batch's acks have reached the server before the caller goes on. An ack
// lost on the way means a redelivery, which the handler absorbs. Each
// message is acked on its own: an ack-all would also acknowledge messages
// another process sharing the consumer has not stored yet.
func ack(ctx context.Context, b Batch, log *slog.Logger) {
	for _, m := range b[:len(b)-1] {
		_ = m.Ack()
	}
	if err := b[len(b)-1].DoubleAck(ctx); err != nil {
		log.Warn("ack failed", "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// StreamSeq returns the stream sequence of m, or 0 when it has no metadata.
func StreamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// Durable connects to (creating or updating) the durable consumer name.
func Durable(ctx context.Context, js jetstream.JetStream, name, deliver string, maxPending int, ackWait time.Duration) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, Events, DurableConsumer(name, deliver, maxPending, ackWait))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	return c, nil
}
