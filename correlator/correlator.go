// Package correlator judges the stream of events after the enforcer
// recorded them. It reads its own durable JetStream consumer, so it runs and
// fails independently of the collector, and does two jobs per batch:
//
// Sessions: it links the events of an agent session — principal, delegation
// chain, agents, tasks and decisions — into one sessions row per session in
// ClickHouse. Rows are rewritten whole with a rising version, and each row
// remembers the last stream sequence it counted, so redelivered events are
// not counted twice and a restarted correlator resumes from ClickHouse.
//
// Detections: on a consumer of its own (so alerts never wait on ClickHouse,
// and come within detect.batch_wait), it runs the detection rules (package
// detect) over the events and publishes the alerts they raise on
// rampart.v1.<tenant>.alert, as the chain of its own instance (package
// record). A batch is acknowledged only once its alerts are; each alert is
// stored once (see record). After a restart the open windows are rebuilt by
// replaying the stream (recover.go).
package correlator

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Correlator is a running correlator: sessions and detections.
type Correlator struct {
	cfg      Config
	log      *slog.Logger
	in       *stream.Reader
	ch       *chstore.Client
	sessions map[sessionKey]*Session
	det      *detection // nil when detection is off
	metrics  metrics
}

// Option changes how New builds a correlator.
type Option func(*options)

type options struct {
	detector Detector
}

// WithDetector runs d instead of the engine built from cfg.Detect.
func WithDetector(d Detector) Option { return func(o *options) { o.detector = d } }

// New connects to NATS and ClickHouse, applies pending migrations and, when
// detection is on, opens the detection consumer, starts the correlator's
// chain and rebuilds the open windows from the stream.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Correlator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "correlator", "partition", cfg.Partition.Index, "partitions", cfg.Partition.Count)
	ch, err := chstore.OpenMigrated(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	src := cfg.Source
	src.Consumer = cfg.consumer()
	in, err := stream.Open(ctx, src, "rampart-correlator sessions "+cfg.instance())
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("correlator: %w", err)
	}
	c := &Correlator{cfg: cfg, log: log, in: in, ch: ch, sessions: make(map[sessionKey]*Session)}
	if err := c.instrument(); err != nil {
		c.Close()
		return nil, err
	}
	var rs *rules
	if o.detector == nil && cfg.Detect.Enabled() {
		if rs, err = newRules(cfg.Detect, log); err != nil {
			c.Close()
			return nil, err
		}
		o.detector = rs.engine
	}
	if o.detector != nil {
		if c.det, err = newDetection(ctx, cfg, o.detector, rs, log); err != nil {
			if rs != nil {
				rs.engine.Close()
			}
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Run correlates until ctx ends: sessions and detections each in their own
// loop over their own consumer, so alerts never wait on ClickHouse.
func (c *Correlator) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.in.Run(ctx, c.log, c.correlate) })
	if c.det != nil {
		g.Go(func() error { return c.det.run(ctx) })
	}
	return g.Wait()
}

// Close publishes the chain's final checkpoint and releases the connections.
func (c *Correlator) Close() {
	if c.metrics.lag != nil {
		_ = c.metrics.lag.Unregister()
	}
	if c.det != nil {
		c.det.close()
	}
	c.in.Close()
	c.ch.Close()
}

func (c *Correlator) correlate(ctx context.Context, b stream.Batch) error {
	touched := map[sessionKey]*Session{}
	for _, m := range b {
		if tenant, _, err := subject.Parse(m.Subject()); err == nil && !c.cfg.Partition.Owns(tenant) {
			// Another correlator's, known undecoded: DecodeMessageOn would
			// make its events this tenant's or fail.
			continue
		}
		events, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			// The collector dead-letters what fails here; counting it
			// would put another tenant's events in this session.
			c.metrics.events.Add(ctx, 1, outcomeUndecodable)
			continue
		}
		c.metrics.events.Add(ctx, int64(len(events)), outcomeRead)
		for k, events := range bySession(events) {
			s, err := c.session(ctx, k)
			if err != nil {
				return err
			}
			if s.apply(events, stream.StreamSeq(m)) {
				touched[k] = s
			}
		}
	}
	if len(touched) == 0 {
		return nil
	}
	version := uint64(time.Now().UnixNano())
	rows := make([][]any, 0, len(touched))
	for _, s := range touched {
		rows = append(rows, s.row(version))
	}
	if err := c.ch.Insert(ctx, "sessions_raw", SessionColumns, rows); err != nil {
		// Memory may now be ahead of ClickHouse: forget, reload on redelivery.
		for k := range touched {
			delete(c.sessions, k)
		}
		return err
	}
	return nil
}

// bySession groups a message's events by the session they belong to, in
// order; events without a session are not correlated.
func bySession(events []*event.Event) map[sessionKey][]*event.Event {
	groups := make(map[sessionKey][]*event.Event, 1)
	for _, e := range events {
		if e.Identity == nil || e.Identity.SessionID == "" {
			continue
		}
		k := sessionKey{e.Tenant, e.Identity.SessionID}
		groups[k] = append(groups[k], e)
	}
	return groups
}

// session returns the state of k, from memory or else from ClickHouse.
func (c *Correlator) session(ctx context.Context, k sessionKey) (*Session, error) {
	if s, ok := c.sessions[k]; ok {
		return s, nil
	}
	s, err := c.load(ctx, k)
	if err != nil {
		return nil, err
	}
	if len(c.sessions) >= c.cfg.CacheSessions {
		for old := range c.sessions { // evict any one; it can be reloaded
			delete(c.sessions, old)
			break
		}
	}
	c.sessions[k] = s
	return s, nil
}

func (c *Correlator) load(ctx context.Context, k sessionKey) (*Session, error) {
	q := fmt.Sprintf(`SELECT first_seen, last_seen, principal, agents, chain, tasks, requests, allowed, denied, responses, last_stream_seq
FROM %s.sessions WHERE tenant = %s AND session_id = %s`, c.ch.Database(), forensic.Quote(k.tenant), forensic.Quote(k.id))
	rows, err := c.ch.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("correlator: load session: %w", err)
	}
	s := &Session{Tenant: k.tenant, ID: k.id}
	if len(rows) == 0 {
		return s, nil
	}
	r := rows[0]
	s.FirstSeen, _ = time.Parse(time.DateTime, r[0])
	s.LastSeen, _ = time.Parse(time.DateTime, r[1])
	s.Principal = r[2]
	s.Agents, s.Chain, s.Tasks = parseList(r[3]), parseList(r[4]), parseList(r[5])
	for i, p := range []*uint64{&s.Requests, &s.Allowed, &s.Denied, &s.Responses, &s.LastStreamSeq} {
		if *p, err = strconv.ParseUint(r[6+i], 10, 64); err != nil {
			return nil, fmt.Errorf("correlator: bad session row: %w", err)
		}
	}
	return s, nil
}

// parseList reads an array as chstore.FormatValue prints it: ['a','b'].
func parseList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" {
		return nil
	}
	var out []string
	for _, item := range strings.Split(s, "','") {
		item = strings.TrimSuffix(strings.TrimPrefix(item, "'"), "'")
		out = append(out, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(item))
	}
	return out
}
