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
// were acknowledged, so replay publishes nothing. It also reads the
// partition's alerts over the whole horizon, up to the stream's end: an
// alert recorded for a batch that was not acknowledged (the crash came
// between the two) is then known, and not recorded again when that batch
// is redelivered, even past JetStream's duplicate window.

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
	from := start.Add(-d.horizon)
	d.mu.Lock()
	defer d.mu.Unlock()
	replayed, err := d.replay(ctx, s, from, floor, part)
	if err != nil {
		return err
	}
	known, err := d.learnAlerts(ctx, s, from, part)
	if err != nil {
		return err
	}
	// Windows that lapsed while the correlator was away are due now; the
	// first flush or tick records them.
	d.pending = d.pending[:0]
	d.log.Info("detection state recovered", "from", from, "ack_floor", floor, "events_replayed", replayed,
		"alerts_known", known, "took", time.Since(start))
	return nil
}

// replay gives the engine the partition's events from from up to and
// including stream sequence floor, discarding the alerts they raise.
func (d *detection) replay(ctx context.Context, s jetstream.Stream, from time.Time, floor uint64, part Partition) (int, error) {
	if floor == 0 {
		return 0, nil
	}
	n := 0
	err := each(ctx, s, subject.Prefix+">", from, floor, func(seq uint64, events []*event.Event) {
		if !part.Owns(events[0].Tenant) {
			return
		}
		for _, e := range events {
			if d.input(e) {
				d.engine.Observe(e)
				n++
				if e.Time.After(d.watermark) {
					d.watermark = e.Time
				}
			}
		}
	})
	return n, err
}

// learnAlerts records the ids of the partition's alerts stored since from.
func (d *detection) learnAlerts(ctx context.Context, s jetstream.Stream, from time.Time, part Partition) (int, error) {
	n := 0
	now := time.Now()
	err := each(ctx, s, subject.Prefix+"*."+string(event.KindAlert), from, 0, func(_ uint64, events []*event.Event) {
		if !part.Owns(events[0].Tenant) {
			return
		}
		for _, e := range events {
			d.published[e.ID] = now
			n++
		}
	})
	return n, err
}

// each hands fn the decoded messages on filter stored since from, in
// stream order, up to sequence last (0: the stream's end when called).
// Undecodable messages are skipped, as the live path skips them. It reads
// through an ephemeral consumer without acks, deleted when done (or by the
// server, once inactive, if this process dies first).
func each(ctx context.Context, s jetstream.Stream, filter string, from time.Time, last uint64, fn func(uint64, []*event.Event)) error {
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "rampart correlator recovery",
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
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
		fn(seq, events)
	}
	return nil
}
