package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/schema/event"
)

// background replays the spool and publishes checkpoints until ctx ends.
func (p *Publisher) background(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(min(p.cfg.Checkpoint.Interval, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.nudge:
		case <-tick.C:
		}
		if p.spool != nil {
			p.replay(ctx)
		}
		if p.checkpointDue() {
			cctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
			if err := p.checkpoint(cctx); err != nil {
				p.log.Warn("checkpoint not recorded", "err", err)
			}
			cancel()
		}
	}
}

func (p *Publisher) checkpointDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	since := time.Since(p.lastCheckpointAt)
	fresh := p.linker.Seq() - p.checkpointed
	return fresh > 0 && (since >= p.cfg.Checkpoint.Interval || fresh >= uint64(p.cfg.Checkpoint.Every)) ||
		since >= p.cfg.Checkpoint.Idle
}

// checkpoint signs the head of the chain and records it like any event.
func (p *Publisher) checkpoint(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	e := &event.Event{V: event.Version, ID: p.ids.New(now), Time: now}
	unrecorded := p.unrecorded
	p.unrecorded = nil
	p.linker.Checkpoint(e, p.signer, unrecorded)
	p.checkpointed, p.lastCheckpointAt = e.Seq, now
	msgs, err := bundle([]*event.Event{e})
	if err != nil {
		p.mu.Unlock()
		return err
	}
	pd := p.send(msgs, p.cfg.OnUnavailable == Spool)
	p.mu.Unlock()
	if err := p.record(ctx, pd); err != nil {
		// The next checkpoint must still report these.
		p.mu.Lock()
		p.unrecorded = append(unrecorded, p.unrecorded...)
		p.mu.Unlock()
		return err
	}
	p.metrics.checkpoints.Add(context.Background(), 1)
	return nil
}

// replayWindow bounds the records in flight while draining the spool.
const replayWindow = 256

// replay publishes spooled records in order while NATS is connected, a
// window at a time, and acknowledges them in the spool once JetStream has.
func (p *Publisher) replay(ctx context.Context) {
	for ctx.Err() == nil && p.nc.Status() == nats.CONNECTED {
		var (
			futures []jetstream.PubAckFuture
			events  int
			last    = p.spoolPos
			err     error
		)
		for len(futures) < replayWindow {
			rec, pos, nerr := p.spool.Next()
			if errors.Is(nerr, io.EOF) {
				break
			}
			if nerr != nil {
				// Only disk corruption gets here; the chain will show the gap.
				p.log.Error("spool record unreadable; skipped", "err", nerr)
				err = nerr
				break
			}
			m, derr := decodeRecord(rec)
			if derr != nil {
				p.log.Error("spool record undecodable; skipped", "err", derr)
				last = pos
				continue
			}
			f, perr := p.js.PublishMsgAsync(m)
			if perr != nil {
				err = perr
				break
			}
			futures = append(futures, f)
			events += bytes.Count(m.Data, []byte{'\n'}) + 1 // a message's events are one a line
			last = pos
		}
		if err == nil {
			err = awaitAll(ctx, futures, p.cfg.PublishTimeout)
		}
		if err != nil {
			p.spool.Rewind()
			return // retried on the next tick or reconnect
		}
		if len(futures) == 0 && last == p.spoolPos {
			p.mu.Lock()
			if p.spool.Len() == 0 {
				p.spooling = false
			}
			p.mu.Unlock()
			return
		}
		if aerr := p.spool.Ack(last); aerr != nil {
			p.log.Error("spool ack failed", "err", aerr)
			p.spool.Rewind()
			return
		}
		p.spoolPos = last
		p.metrics.replayed.Add(context.Background(), int64(events))
	}
}

func awaitAll(ctx context.Context, futures []jetstream.PubAckFuture, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// spoolRecord is a message as the spool keeps it: subject, message id, data.
func spoolRecord(m *nats.Msg) []byte {
	id := m.Header.Get(jetstream.MsgIDHeader)
	b := make([]byte, 0, 4+len(m.Subject)+len(id)+len(m.Data))
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Subject)))
	b = append(b, m.Subject...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, m.Data...)
}

func decodeRecord(b []byte) (*nats.Msg, error) {
	field := func() (string, error) {
		if len(b) < 2 {
			return "", errors.New("audit: short spool record")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", errors.New("audit: short spool record")
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, nil
	}
	subj, err := field()
	if err != nil {
		return nil, err
	}
	id, err := field()
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subj)
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = b
	return m, nil
}

type metrics struct {
	published, spooled, replayed, unrecorded, checkpoints metric.Int64Counter
	reg                                                   metric.Registration
}

func (p *Publisher) instrument() error {
	m := otel.Meter("github.com/rampart-io/rampart/enforcer/audit")
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit("{event}"), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return c
	}
	p.metrics.published = counter("rampart.audit.published", "Events acknowledged by JetStream on first try")
	p.metrics.spooled = counter("rampart.audit.spooled", "Events recorded in the local spool")
	p.metrics.replayed = counter("rampart.audit.replayed", "Spooled events acknowledged by JetStream")
	p.metrics.unrecorded = counter("rampart.audit.unrecorded", "Events that could not be recorded (their requests were refused)")
	p.metrics.checkpoints = counter("rampart.audit.checkpoints", "Signed checkpoints recorded")
	if err != nil {
		return err
	}
	// From zero, so that an alert on increase() sees the first event.
	for _, c := range []metric.Int64Counter{p.metrics.published, p.metrics.spooled, p.metrics.replayed, p.metrics.unrecorded, p.metrics.checkpoints} {
		c.Add(context.Background(), 0)
	}
	depth, err := m.Int64ObservableGauge("rampart.audit.spool.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes in the spool waiting for JetStream"))
	if err != nil {
		return err
	}
	p.metrics.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if p.spool != nil {
			o.ObserveInt64(depth, p.spool.Len())
		}
		return nil
	}, depth)
	return err
}
