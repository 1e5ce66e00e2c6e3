// Package correlator links the events of an agent session — principal,
// delegation chain, agents, tasks and decisions — into one sessions row per
// session in ClickHouse. It reads its own durable JetStream consumer, so it
// runs and fails independently of the collector.
//
// Rows are rewritten whole with a rising version, and each row remembers the
// last stream sequence it counted, so redelivered events are not counted
// twice and a restarted correlator resumes from ClickHouse, not from memory.
package correlator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/schema/stream"
)

// Config configures a correlator.
type Config struct {
	// Source is where events are read: NATS, consumer and batching.
	stream.Source `yaml:",inline"`
	// CacheSessions bounds sessions kept in memory; others are reloaded.
	CacheSessions int `yaml:"cache_sessions"`
	// ClickHouse is where session rows are written.
	ClickHouse chstore.Config `yaml:"clickhouse"`
}

// Defaults returns the single-node configuration.
func Defaults() Config {
	return Config{Source: stream.DefaultSource("correlator"), CacheSessions: 100000, ClickHouse: chstore.Defaults()}
}

// Validate checks c.
func (c Config) Validate() error {
	if err := c.Source.Validate(); err != nil {
		return fmt.Errorf("correlator: %w", err)
	}
	if c.CacheSessions < 1 {
		return errors.New("correlator: cache_sessions must be positive")
	}
	return c.ClickHouse.Validate()
}

// Correlator is a running session correlator.
type Correlator struct {
	cfg      Config
	log      *slog.Logger
	in       *stream.Reader
	ch       *chstore.Client
	sessions map[sessionKey]*Session
	metrics  metrics
}

// New connects to NATS and ClickHouse and applies pending migrations.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Correlator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ch, err := chstore.OpenMigrated(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	in, err := stream.Open(ctx, cfg.Source, "rampart-correlator")
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("correlator: %w", err)
	}
	c := &Correlator{cfg: cfg, log: log.With("component", "correlator"), in: in, ch: ch,
		sessions: make(map[sessionKey]*Session)}
	if err := c.instrument(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Run correlates until ctx ends.
func (c *Correlator) Run(ctx context.Context) error {
	return c.in.Run(ctx, c.log, c.correlate)
}

// Close releases the connections.
func (c *Correlator) Close() {
	if c.metrics.lag != nil {
		_ = c.metrics.lag.Unregister()
	}
	c.in.Close()
	c.ch.Close()
}

func (c *Correlator) correlate(ctx context.Context, b stream.Batch) error {
	touched := map[sessionKey]*Session{}
	for _, m := range b {
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
