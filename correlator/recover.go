package correlator

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Recovery: the open windows of a correlator that stopped (or was killed)
// are rebuilt by replaying the stream, not by reading them back from a
// store. The stream already holds every event a window can need, in the
// order the engine first saw them; so replaying it from (now - horizon)
// up to the durable consumer's ack floor, through the same deterministic
// engine, gives back the state it had when it acknowledged its last batch,
// with nothing to write per event and nothing that can disagree with the
// record. What is past the ack floor the durable consumer delivers next,
// as usual. ClickHouse was not chosen because it lags the stream by the
// collector's batch and may be down while JetStream is up; a KV bucket of
// engine state would be written on every batch and tie the record to the
// engine's internal form. The price is a read of the horizon at start.
//
// Alerts raised by the replayed events were recorded before those events
// were acknowledged, so replay publishes nothing. Recovery first reads the
// partition's alerts over the whole horizon, up to the stream's end: an
// alert recorded for a batch that was not acknowledged (the crash came
// between the two) is then known, and not recorded again, even past
// JetStream's duplicate window. Then it catches up: the messages past the
// ack floor, up to the stream's end at start, are handled as the live path
// would (alerts recorded), in stream order, and the durable consumer's
// deliveries of them are skipped.

// recover rebuilds the engine's state; see above.
func (d *detection) recover(ctx context.Context, in *stream.Reader, part Partition) error {
	start := time.Now()
	info, err := in.Consumer().Info(ctx)
	if err != nil {
		return fmt.Errorf("correlator: recovery: consumer: %w", err)
	}
	floor := info.AckFloor.Stream
	s, err := in.JetStream().Stream(ctx, stream.Events)
	if err != nil {
		return fmt.Errorf("correlator: recovery: %w", err)
	}
	sinfo, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("correlator: recovery: %w", err)
	}
	last := sinfo.State.LastSeq
	from := start.Add(-d.horizon)
	d.mu.Lock()
	defer d.mu.Unlock()
	known, err := d.learnAlerts(ctx, s, from, part)
	if err != nil {
		return err
	}
	replayed, err := d.replay(ctx, s, from, floor, part)
	if err != nil {
		return err
	}
	caught, err := d.catchUp(ctx, s, floor, last, part)
	if err != nil {
		return err
	}
	d.log.Info("detection state recovered", "from", from, "ack_floor", floor, "stream_last", last,
		"events_replayed", replayed, "events_caught_up", caught, "alerts_known", known, "took", time.Since(start))
	return nil
}

// replay gives the engine the partition's events from from up to and
// including stream sequence floor, discarding the alerts they raise.
// Called with d.mu held.
func (d *detection) replay(ctx context.Context, s jetstream.Stream, from time.Time, floor uint64, part Partition) (int, error) {
	if floor == 0 {
		return 0, nil
	}
	n := 0
	err := each(ctx, s, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from}, floor,
		func(seq uint64, events []*event.Event) error {
			if part.Judges(events[0].Tenant) {
				n += len(events)
				d.observeLocked(seq, events) // their alerts were recorded before the ack
				d.pending = d.pending[:0]
			}
			return nil
		})
	return n, err
}

// catchUpFlush bounds the alerts held while catching up.
const catchUpFlush = 1000

// catchUp handles the messages past the ack floor, up to last, as the live
// path would, recording their alerts (those already stored are known), and
// marks them handled, so the durable consumer's redelivery of them is
// skipped. Handling them here rather than as the consumer redelivers them
// keeps the engine in stream order: the messages a killed correlator had
// in flight come back only after the consumer's ack wait, behind newer
// ones. Called with d.mu held.
func (d *detection) catchUp(ctx context.Context, s jetstream.Stream, floor, last uint64, part Partition) (int, error) {
	if last <= floor {
		d.skipThrough = last
		return 0, nil
	}
	n, since := 0, 0
	err := each(ctx, s, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: floor + 1}, last,
		func(seq uint64, events []*event.Event) error {
			if !part.Judges(events[0].Tenant) {
				return nil
			}
			n += len(events)
			d.observeLocked(seq, events)
			if since++; since >= catchUpFlush {
				since = 0
				return d.settle(ctx)
			}
			return nil
		})
	if err == nil {
		err = d.settle(ctx)
	}
	if err != nil {
		return n, err
	}
	d.skipThrough = last
	return n, nil
}

// learnAlerts records the ids of the partition's alerts stored since from.
func (d *detection) learnAlerts(ctx context.Context, s jetstream.Stream, from time.Time, part Partition) (int, error) {
	n := 0
	now := time.Now()
	err := each(ctx, s, jetstream.ConsumerConfig{FilterSubject: subject.Prefix + "*." + string(event.KindAlert),
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from}, 0,
		func(_ uint64, events []*event.Event) error {
			if part.Owns(events[0].Tenant) {
				for _, e := range events {
					d.published[e.ID] = now
					n++
				}
			}
			return nil
		})
	return n, err
}

// each hands fn the decoded messages selected by cfg (its filter, default
// every event, and its start), in stream order, up to sequence last (0: the
// stream's end when called); fn's error stops it. Undecodable messages are
// skipped, as the live path skips them. It reads through an ephemeral
// consumer without acks, deleted when done (or by the server, once
// inactive, if this process dies first).
func each(ctx context.Context, s jetstream.Stream, cfg jetstream.ConsumerConfig, last uint64, fn func(uint64, []*event.Event) error) error {
	cfg.Description = "rampart correlator recovery"
	if cfg.FilterSubject == "" {
		cfg.FilterSubject = subject.Prefix + ">"
	}
	cfg.AckPolicy, cfg.InactiveThreshold, cfg.MemoryStorage, cfg.Replicas = jetstream.AckNonePolicy, time.Minute, true, 1
	c, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("correlator: recovery: %w", err)
	}
	defer func() { _ = s.DeleteConsumer(context.WithoutCancel(ctx), c.CachedInfo().Name) }()
	pending := c.CachedInfo().NumPending // matching messages when created
	if pending == 0 {
		return nil
	}
	it, err := c.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("correlator: recovery: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for ; pending > 0; pending-- {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("correlator: recovery: read stream: %w", err)
		}
		seq := stream.StreamSeq(m)
		if last != 0 && seq > last {
			return nil
		}
		events, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			continue
		}
		if err := fn(seq, events); err != nil {
			return err
		}
	}
	return nil
}
