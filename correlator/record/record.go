// Package record publishes the correlator's own events — alerts, rule set
// reloads — to JetStream as the chain of one correlator instance, with
// signed checkpoints, so `rampart verify` covers what the correlator said
// as it covers what an enforcer saw.
//
// Every event is published under its id as Nats-Msg-Id. An alert's id is
// derived from what raised it, so an alert raised again (after a
// redelivery, a restart, or by a second correlator) is stored once: when
// JetStream answers that the message is a duplicate of another already
// stored, the event is taken back out of the chain, and costs no sequence
// number. A publish whose fate is unknown is retried with the same bytes
// until JetStream answers, so a retry never forks the chain.
package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Config configures the chain and its checkpoints, as the enforcer's
// audit.checkpoint section does.
type Config struct {
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
	// PublishTimeout bounds one attempt to publish an event; a failed
	// attempt is retried until the caller's context ends. Default 2s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Every == 0 {
		c.Every = 1000
	}
	if c.Idle == 0 {
		c.Idle = 30 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 2 * time.Second
	}
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	if c.Interval < 0 || c.Idle < 0 || c.Every < 0 || c.PublishTimeout < 0 {
		return errors.New("record: checkpoint interval, idle, every and publish_timeout must not be negative")
	}
	return nil
}

// ErrInvalid marks an event refused before it was linked (it fails
// validation, or its tenant cannot name a subject): retrying cannot help.
var ErrInvalid = errors.New("record: invalid event")

// Outcome is what became of a published event.
type Outcome int

const (
	// Recorded: the event is stored, with the next sequence number.
	Recorded Outcome = iota + 1
	// Duplicate: another event with the same id was already stored (the
	// same alert raised before); this one took no sequence number.
	Duplicate
)

// Publisher chains and records one instance's events. It is safe for
// concurrent use; events are recorded one at a time, in the chain's order.
type Publisher struct {
	cfg     Config
	js      jetstream.JetStream
	log     *slog.Logger
	signer  chain.Signer
	metrics metrics

	mu               sync.Mutex // held for the whole of a publish
	ids              event.IDSource
	linker           *chain.Linker
	unrecorded       []uint64 // given up since the last checkpoint
	checkpointed     uint64
	lastCheckpointAt time.Time
	events           *jetstream.Stream // opened on the first duplicate

	nudge  chan struct{}
	stop   context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

// New starts a new epoch of instance's chain, publishing through js, and
// its checkpoints in the background until Close.
func New(js jetstream.JetStream, instance string, cfg Config, log *slog.Logger) (*Publisher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if instance == "" {
		return nil, errors.New("record: instance name is required")
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "record", "instance", instance)
	signer, err := chain.LoadSigner(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.KeyFile == "" {
		log.Warn("checkpoints signed with an ephemeral key; set checkpoint.key_file so signatures can be verified", "key_id", signer.KeyID)
	}
	p := &Publisher{cfg: cfg, js: js, log: log, signer: signer, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	p.linker = chain.NewLinker(instance, p.ids.New(time.Now()))
	p.lastCheckpointAt = time.Now()
	if err := p.instrument(); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.background(bg)
	log.Info("correlator chain started", "epoch", p.linker.Epoch(), "key_id", signer.KeyID)
	return p, nil
}

// Epoch is the epoch of this publisher's chain.
func (p *Publisher) Epoch() string { return p.linker.Epoch() }

// KeyID names the key checkpoints are signed with.
func (p *Publisher) KeyID() string { return p.signer.KeyID }

// Publish stamps e (V, and ID and Time when unset), links it into the
// chain and records it under its id. It returns once JetStream has
// answered: Recorded, or Duplicate when an event with e's id was stored
// before (e is then out of the chain). An error means ctx ended first:
// when JetStream refused every attempt, e is out of the chain; otherwise
// its sequence number is reported unrecorded by the next checkpoint, since
// it may or may not have reached the stream.
func (p *Publisher) Publish(ctx context.Context, e *event.Event) (Outcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stamp(e); err != nil {
		return 0, err
	}
	mark := p.linker.Mark()
	p.linker.Link(e)
	msg, err := message(e)
	if err != nil {
		p.linker.Rewind(mark)
		return 0, err
	}
	ack, uncertain, err := p.send(ctx, msg)
	if err != nil {
		if !uncertain {
			// JetStream refused every attempt: none is stored.
			p.linker.Rewind(mark)
			return 0, err
		}
		p.unrecorded = append(p.unrecorded, e.Seq)
		p.metrics.unrecorded.Add(context.Background(), 1)
		return 0, err
	}
	if ack.Duplicate {
		ours, err := p.isOurs(ctx, ack.Sequence, msg.Data)
		if err != nil {
			// Unknown whether the stored message is this one: keep the
			// number and say so, rather than risk two events under it.
			p.unrecorded = append(p.unrecorded, e.Seq)
			p.metrics.unrecorded.Add(context.Background(), 1)
			return 0, err
		}
		if !ours {
			p.linker.Rewind(mark)
			p.metrics.duplicates.Add(context.Background(), 1)
			return Duplicate, nil
		}
	}
	p.metrics.recorded.Add(context.Background(), 1)
	if p.linker.Seq()-p.checkpointed >= uint64(p.cfg.Every) {
		p.wake()
	}
	return Recorded, nil
}

// stamp fills in and validates e before it is linked, so a bad event
// costs no sequence number. Called with p.mu held.
func (p *Publisher) stamp(e *event.Event) error {
	e.V = event.Version
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.ID == "" {
		e.ID = p.ids.New(e.Time)
	}
	e.Instance, e.Seq, e.Epoch, e.Prev = "-", 1, "", "" // placeholders Link replaces
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := subject.For(e.Tenant, string(e.Kind)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func message(e *event.Event) (*nats.Msg, error) {
	subj, err := subject.For(e.Tenant, string(e.Kind))
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	body, err := event.AppendMessage(nil, e)
	if err != nil {
		return nil, fmt.Errorf("record: encode event %s: %w", e.ID, err)
	}
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	return m, nil
}

// send publishes msg until JetStream acknowledges it or ctx ends. The
// bytes never change between attempts, so an attempt that was stored
// after all makes the next one a duplicate of itself (see isOurs). On
// failure, uncertain says whether some attempt may have been stored: one
// that JetStream answered with an error (a refusal) certainly was not.
func (p *Publisher) send(ctx context.Context, msg *nats.Msg) (ack *jetstream.PubAck, uncertain bool, err error) {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
		ack, err = p.js.PublishMsg(actx, msg, jetstream.WithExpectStream(stream.Events))
		cancel()
		if err == nil {
			return ack, false, nil
		}
		if _, refused := errors.AsType[*jetstream.APIError](err); !refused {
			uncertain = true
		}
		if ctx.Err() != nil {
			return nil, uncertain, fmt.Errorf("record: %s not acknowledged: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
		}
		p.log.Warn("publish failed; retrying", "subject", msg.Subject, "err", err)
		select {
		case <-ctx.Done():
			return nil, uncertain, fmt.Errorf("record: %s not acknowledged: %w", msg.Header.Get(jetstream.MsgIDHeader), context.Cause(ctx))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// isOurs reports whether the message stored at seq is data: an earlier
// attempt of this very publish, rather than an earlier event with the id.
func (p *Publisher) isOurs(ctx context.Context, seq uint64, data []byte) (bool, error) {
	if p.events == nil {
		s, err := p.js.Stream(ctx, stream.Events)
		if err != nil {
			return false, fmt.Errorf("record: %w", err)
		}
		p.events = &s
	}
	m, err := (*p.events).GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil // aged out: certainly not this attempt's
	}
	if err != nil {
		return false, fmt.Errorf("record: read stored duplicate: %w", err)
	}
	return bytes.Equal(m.Data, data), nil
}

// background publishes checkpoints until ctx ends.
func (p *Publisher) background(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(min(p.cfg.Interval, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.nudge:
		case <-tick.C:
		}
		if p.checkpointDue() {
			cctx, cancel := context.WithTimeout(ctx, 2*p.cfg.PublishTimeout)
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
	return fresh > 0 && (since >= p.cfg.Interval || fresh >= uint64(p.cfg.Every)) || since >= p.cfg.Idle
}

// checkpoint signs the head of the chain and records it like any event.
func (p *Publisher) checkpoint(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	e := &event.Event{V: event.Version, ID: p.ids.New(now), Time: now}
	unrecorded := p.unrecorded
	p.unrecorded = nil
	p.linker.Checkpoint(e, p.signer, unrecorded)
	p.checkpointed, p.lastCheckpointAt = e.Seq, now
	msg, err := message(e)
	if err == nil {
		_, _, err = p.send(ctx, msg)
	}
	if err != nil {
		// This checkpoint's own number is now a gap too; the next one
		// reports both it and what it carried.
		p.unrecorded = append(append(unrecorded, e.Seq), p.unrecorded...)
		return err
	}
	p.metrics.checkpoints.Add(context.Background(), 1)
	return nil
}

func (p *Publisher) wake() {
	select {
	case p.nudge <- struct{}{}:
	default:
	}
}

// Close publishes a final checkpoint and stops the background loop. It
// does not close the connection, which belongs to the caller.
func (p *Publisher) Close() {
	p.closed.Do(func() {
		p.stop()
		<-p.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*p.cfg.PublishTimeout)
		defer cancel()
		if err := p.checkpoint(ctx); err != nil {
			p.log.Warn("final checkpoint not recorded", "err", err)
		}
	})
}

type metrics struct {
	recorded, duplicates, unrecorded, checkpoints metric.Int64Counter
}

func (p *Publisher) instrument() error {
	m := otel.Meter("github.com/rampart-io/rampart/correlator/record")
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit("{event}"), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return c
	}
	p.metrics.recorded = counter("rampart.correlator.record.recorded", "Correlator events (alerts, reloads) acknowledged by JetStream")
	p.metrics.duplicates = counter("rampart.correlator.record.duplicates", "Alerts JetStream already held under the same id (raised before)")
	p.metrics.unrecorded = counter("rampart.correlator.record.unrecorded", "Correlator events whose fate is unknown (reported by the next checkpoint)")
	p.metrics.checkpoints = counter("rampart.correlator.record.checkpoints", "Signed checkpoints recorded")
	return err
}
