package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
)

// What an enforcer does when its watch of the revocations is stale.
const (
	OnStaleRefuse = "refuse"
	OnStaleAllow  = "allow"
)

// WatchConfig is the enforcer's "revocations" section: how current its
// view of RAMPART_REVOCATIONS must be for it to hand out credentials.
//
//	revocations:
//	  max_staleness: 5s
//	  on_stale: refuse
type WatchConfig struct {
	// MaxStaleness is how long the view may go unconfirmed (NATS
	// unreachable, the watch behind) before it counts as stale.
	// Default 5s.
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// OnStale is what a stale view does to calls needing a credential:
	// "refuse" (the default, 503 revocations_stale: nothing is minted or
	// reused that might have been revoked meanwhile) or "allow" (mint and
	// reuse as usual; exposure is then bounded by the credential's ttl).
	OnStale string `yaml:"on_stale"`
}

// SetDefaults fills the unset fields of c.
func (c *WatchConfig) SetDefaults() {
	if c.MaxStaleness == 0 {
		c.MaxStaleness = 5 * time.Second
	}
	if c.OnStale == "" {
		c.OnStale = OnStaleRefuse
	}
}

// Validate reports the first configuration error.
func (c *WatchConfig) Validate() error {
	switch {
	case c.MaxStaleness < 100*time.Millisecond:
		return fmt.Errorf("revocations: max_staleness %s is under 100ms", c.MaxStaleness)
	case c.OnStale != OnStaleRefuse && c.OnStale != OnStaleAllow:
		return fmt.Errorf("revocations: on_stale %q: want refuse or allow", c.OnStale)
	}
	return nil
}

// Revocations is an enforcer's view of RAMPART_REVOCATIONS: every ended
// task and every revoked credential, read from the start of the bucket
// and kept current by a watch. It knows how current it is: a check loop
// asks the bucket for its last revision and confirms the watch has
// delivered it, so a view NATS cannot confirm goes stale by itself.
type Revocations struct {
	cfg WatchConfig
	kv  jetstream.KeyValue
	log *slog.Logger
	now func() time.Time

	mu    sync.RWMutex
	tasks map[string]time.Time // tenant \x00 task -> revoked at
	jtis  map[string]time.Time // jti -> until
	ttl   time.Duration        // how long a task's record matters

	seen      atomic.Uint64 // highest revision the watch delivered
	confirmed atomic.Int64  // unix nanos when the view was last known current
	progress  chan struct{} // nudged on every delivery
	ready     chan struct{} // closed when the bucket's history is read
}

// NewRevocations returns the view of the revocations bucket kv; Run fills
// it. ttl is the bucket's: how long a task's record is kept.
func NewRevocations(cfg WatchConfig, kv jetstream.KeyValue, ttl time.Duration, log *slog.Logger) *Revocations {
	cfg.SetDefaults()
	return &Revocations{cfg: cfg, kv: kv, log: log, now: time.Now, ttl: ttl,
		tasks: map[string]time.Time{}, jtis: map[string]time.Time{},
		progress: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Ready is closed once the bucket's history has been read.
func (r *Revocations) Ready() <-chan struct{} { return r.ready }

func taskKey(tenant, task string) string { return tenant + "\x00" + task }

// TaskEnded reports whether tenant's task is known to have ended.
func (r *Revocations) TaskEnded(tenant, task string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.tasks[taskKey(tenant, task)]
	return ok
}

// Revoked reports whether the credential jti is known to be revoked.
func (r *Revocations) Revoked(jti string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.jtis[jti]
	return ok
}

// Stale reports whether the view went unconfirmed longer than
// max_staleness, and for how long it has.
func (r *Revocations) Stale() (bool, time.Duration) {
	age := r.now().Sub(time.Unix(0, r.confirmed.Load()))
	return age > r.cfg.MaxStaleness, age
}

// RefuseWhenStale reports whether a stale view refuses credentials.
func (r *Revocations) RefuseWhenStale() bool { return r.cfg.OnStale == OnStaleRefuse }

// Run reads the bucket from its start and follows it, and confirms the
// view's currency every max_staleness/4, until ctx ends.
func (r *Revocations) Run(ctx context.Context) error {
	last, err := r.lastRevision(ctx)
	if err != nil {
		return fmt.Errorf("credential: revocations: %w", err)
	}
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("credential: watch %s: %w", stream.Revocations, err)
	}
	defer func() { _ = w.Stop() }()
	go r.confirm(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				// History read: whatever the bucket held when the watch
				// began is in the view, expired records included.
				r.advance(last)
				r.confirmed.Store(r.now().UnixNano())
				select {
				case <-r.ready:
				default:
					close(r.ready)
				}
				continue
			}
			r.apply(e)
		}
	}
}

func (r *Revocations) apply(e jetstream.KeyValueEntry) {
	defer r.advance(e.Revision())
	if e.Operation() != jetstream.KeyValuePut {
		return // a revocation is never taken back; its expiry is its own
	}
	tenant, task, jti, err := stream.ParseRevocationKey(e.Key())
	if err != nil {
		r.log.Warn("revocation key unreadable, ignored", "key", e.Key(), "err", err)
		return
	}
	v, err := stream.DecodeRevocation(e.Value())
	if err != nil {
		r.log.Warn("revocation unreadable, ignored", "key", e.Key(), "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if jti != "" {
		r.jtis[jti] = v.Until
		return
	}
	r.tasks[taskKey(tenant, task)] = v.RevokedAt
}

func (r *Revocations) advance(rev uint64) {
	for {
		cur := r.seen.Load()
		if rev <= cur || r.seen.CompareAndSwap(cur, rev) {
			break
		}
	}
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

// confirm asks the bucket for its last revision every max_staleness/4
// and marks the view current at the time of asking once the watch has
// delivered that revision. It also forgets what no longer matters.
func (r *Revocations) confirm(ctx context.Context) {
	every := r.cfg.MaxStaleness / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := r.now()
		actx, cancel := context.WithTimeout(ctx, every)
		last, err := r.lastRevision(actx)
		for err == nil && r.seen.Load() < last {
			select {
			case <-r.progress:
			case <-actx.Done():
				err = actx.Err()
			}
		}
		cancel()
		if err == nil {
			r.confirmed.Store(asked.UnixNano())
		}
		r.forget(asked)
	}
}

func (r *Revocations) lastRevision(ctx context.Context) (uint64, error) {
	st, err := r.kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, errors.New("bucket status without stream info")
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// forget drops credentials past their expiry and tasks past the bucket's
// ttl: nothing they revoke can still be presented.
func (r *Revocations) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j, until := range r.jtis {
		if !until.IsZero() && now.Sub(until) > time.Minute {
			delete(r.jtis, j)
		}
	}
	if r.ttl > 0 {
		for k, at := range r.tasks {
			if now.Sub(at) > r.ttl {
				delete(r.tasks, k)
			}
		}
	}
}
