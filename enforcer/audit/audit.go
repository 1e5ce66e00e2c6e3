// Package audit publishes the enforcer's events to JetStream, where the
// collector picks them up. It is the enforcer's write-ahead record: Publish
// returns only when JetStream has acknowledged every event, and the
// enforcer forwards nothing it could not record.
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
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Config locates JetStream and bounds how long a request waits for it.
type Config struct {
	// URL is the NATS server URL (comma-separated for a cluster).
	// Default nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// PublishTimeout bounds the wait for JetStream to acknowledge the events
	// of one request. Default 2s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// Stream is the configuration the events stream is ensured with at
	// start. It must match the cluster's: ensuring updates the stream.
	// Default stream.Defaults(), a single replica.
	Stream *stream.Config `yaml:"stream"`
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
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("audit: nats url is required")
	case c.PublishTimeout < 0:
		return errors.New("audit: publish_timeout must not be negative")
	}
	return nil
}

// ErrUnavailable wraps every failure to record events: the caller must not
// act on a request whose events it could not publish.
var ErrUnavailable = errors.New("audit: unavailable")

// Publisher stamps events with this instance's identity and sequence and
// publishes them. It is safe for concurrent use.
type Publisher struct {
	instance string
	timeout  time.Duration
	nc       *nats.Conn
	js       jetstream.JetStream
	log      *slog.Logger
	ids      event.IDSource

	// mu orders sequence assignment with the publish calls, so events reach
	// the server in Seq order.
	mu  sync.Mutex
	seq uint64 // last sequence assigned
}

// Connect connects to NATS, ensures the streams exist, and returns a
// Publisher for the named instance. The connection reconnects forever.
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
	nc, err := nats.Connect(cfg.URL,
		nats.Name("rampart-enforcer "+instance),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		// No buffering while disconnected: a publish then fails at once
		// (the request gets 503 without waiting out the timeout) instead of
		// reaching the stream later for a request that was refused.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("audit: connect %s: %w", cfg.URL, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("audit: jetstream: %w", err)
	}
	if _, err := stream.Ensure(ctx, js, *cfg.Stream); err != nil {
		nc.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Publisher{instance: instance, timeout: cfg.PublishTimeout, nc: nc, js: js, log: log}, nil
}

// Publish stamps and publishes events and waits until JetStream has
// acknowledged all of them, or until the publish timeout or ctx ends. Each
// event gets V, Instance, the next Seq, and ID and Time when unset; events
// of one call get consecutive sequence numbers. An error wraps
// ErrUnavailable. Events already sent when a publish fails keep their
// sequence numbers, so a failed call can leave a gap: a gap means "events
// may be missing here", which is the truth.
func (p *Publisher) Publish(ctx context.Context, events ...*event.Event) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	futures, err := p.send(events)
	for _, f := range futures {
		select {
		case <-f.Ok():
		case e := <-f.Err():
			return fmt.Errorf("%w: event %s: %w", ErrUnavailable, f.Msg().Header.Get(jetstream.MsgIDHeader), e)
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for acks: %w", ErrUnavailable, context.Cause(ctx))
		}
	}
	return err
}

// send stamps, encodes and publishes events in sequence order. It returns
// the futures of the events sent, and the error that stopped it, if any.
func (p *Publisher) send(events []*event.Event) ([]jetstream.PubAckFuture, error) {
	msgs := make([]*nats.Msg, len(events))
	p.mu.Lock()
	defer p.mu.Unlock()
	// Stamp and encode all before sending any, so a bad event costs no
	// sequence number.
	for i, e := range events {
		e.V = event.Version
		e.Instance = p.instance
		e.Seq = p.seq + uint64(i) + 1
		if e.Time.IsZero() {
			e.Time = time.Now().UTC()
		}
		if e.ID == "" {
			e.ID = p.ids.New(e.Time)
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		subj, err := subject.For(e.Tenant, string(e.Kind))
		if err != nil {
			return nil, fmt.Errorf("audit: event %s: %w", e.ID, err)
		}
		data, err := event.Encode(e)
		if err != nil {
			return nil, fmt.Errorf("audit: encode event %s: %w", e.ID, err)
		}
		msgs[i] = &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for i, m := range msgs {
		f, err := p.js.PublishMsgAsync(m, jetstream.WithMsgID(events[i].ID))
		if err != nil {
			p.seq += uint64(i) // the ones sent keep their numbers
			return futures, fmt.Errorf("%w: publish event %s: %w", ErrUnavailable, events[i].ID, err)
		}
		futures = append(futures, f)
	}
	p.seq += uint64(len(msgs))
	return futures, nil
}

// Close drains nothing: events not acknowledged by now were already
// reported as failures to their callers.
func (p *Publisher) Close() { p.nc.Close() }
