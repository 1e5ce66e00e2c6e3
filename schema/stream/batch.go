package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Size    int           // messages per batch at most
	MaxWait time.Duration // how long to wait to fill a batch
	// RetryDelay is how long failed messages wait before redelivery.
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// ConsumeBatches fetches batches from c and hands each to h until ctx ends.
// The ack is synchronous, so when the handler's effect is durable and the
// function moves on, JetStream has recorded the ack too.
func ConsumeBatches(ctx context.Context, c jetstream.Consumer, o BatchOptions, h Handler) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		mb, err := c.Fetch(o.Size, jetstream.FetchMaxWait(o.MaxWait))
		if err != nil {
			log.Warn("fetch failed", "err", err)
			if !sleep(ctx, o.RetryDelay) {
				break
			}
			continue
		}
		var b Batch
		for m := range mb.Messages() {
			b = append(b, m)
		}
		if err := mb.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("fetch ended early", "err", err, "messages", len(b))
		}
		if len(b) == 0 {
			continue
		}
		if err := h(ctx, b); err != nil {
			log.Warn("batch failed; will be redelivered", "err", err, "messages", len(b))
			for _, m := range b {
				_ = m.NakWithDelay(o.RetryDelay)
			}
			if !sleep(ctx, o.RetryDelay) {
				break
			}
			continue
		}
		// Every message is acked; the last synchronously, so the batch's
		// acks have reached the server before the next fetch. An ack lost
		// on the way means a redelivery, which the handler absorbs.
		for _, m := range b[:len(b)-1] {
			_ = m.Ack()
		}
		if err := b[len(b)-1].DoubleAck(ctx); err != nil {
			log.Warn("ack failed", "err", err)
		}
	}
	return ctx.Err()
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
