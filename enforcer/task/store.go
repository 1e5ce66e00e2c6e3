package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
)

// Defaults of Config.
const (
	DefaultMaxTaskDuration = 24 * time.Hour
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultSweepInterval   = time.Second
	DefaultMaxCredentials  = 1024
	DefaultMaxPerTenant    = 10_000
)

// Config is the enforcer's "tasks" section.
//
//	tasks:
//	  max_task_duration: 24h
//	  task_idle_timeout: 30m
//	  sweep_interval: 1s
type Config struct {
	// MaxTaskDuration bounds every task's life from its start (declared or
	// first call): a declared deadline may be earlier, never later. At
	// the deadline the task ends (reason deadline). Default 24h.
	MaxTaskDuration time.Duration `yaml:"max_task_duration"`
	// IdleTimeout ends a task no call was allowed under for this long
	// (reason idle). Default 30m.
	IdleTimeout time.Duration `yaml:"task_idle_timeout"`
	// SweepInterval is how often each instance looks for tasks past their
	// deadline or idle; one of them ends each. Default 1s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// MaxCredentials bounds the credentials minted under one task (each
	// distinct audience, scope and caller is one; reuse mints none).
	// Past it a call needing a new one is refused. Default 1024.
	MaxCredentials int `yaml:"max_credentials"`
	// MaxPerTenant bounds a tenant's live tasks, so that a client sending
	// a fresh task id per call cannot grow the shared bucket (and every
	// instance's copy of it) without end: past it a call starting a new
	// task, or a declaration, is refused (task_table_full) until tasks
	// end. Counted in each instance's copy, so instances starting tasks
	// at once may pass it by what they start within the watch's delay.
	// Default 10000.
	MaxPerTenant int `yaml:"max_per_tenant"`
}

// SetDefaults fills the unset fields of c.
func (c *Config) SetDefaults() {
	if c.MaxTaskDuration == 0 {
		c.MaxTaskDuration = DefaultMaxTaskDuration
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.MaxCredentials == 0 {
		c.MaxCredentials = DefaultMaxCredentials
	}
	if c.MaxPerTenant == 0 {
		c.MaxPerTenant = DefaultMaxPerTenant
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch {
	case c.MaxTaskDuration < time.Second:
		return fmt.Errorf("tasks: max_task_duration %s is under a second", c.MaxTaskDuration)
	case c.IdleTimeout < time.Second:
		return fmt.Errorf("tasks: task_idle_timeout %s is under a second", c.IdleTimeout)
	case c.SweepInterval <= 0 || c.SweepInterval > c.IdleTimeout:
		return fmt.Errorf("tasks: sweep_interval %s must be positive and at most task_idle_timeout", c.SweepInterval)
	case c.MaxCredentials < 1 || c.MaxPerTenant < 1:
		return errors.New("tasks: max_credentials and max_per_tenant must be positive")
	}
	return nil
}

// Errors of the store; the enforcer maps each to a stable code.
var (
	ErrExists      = errors.New("task: already exists")
	ErrUnknown     = errors.New("task: unknown")
	ErrEnded       = errors.New("task: ended")
	ErrForeign     = errors.New("task: held by another principal")
	ErrBudget      = errors.New("task: call budget spent")
	ErrCredentials = errors.New("task: too many credentials minted under the task")
	// ErrFull refuses a new task of a tenant with max_per_tenant live.
	ErrFull = errors.New("task: the tenant's live tasks are at max_per_tenant")
	// ErrUnavailable reports that the bucket could not be read or
	// written: the call's effect on the task cannot be known, so it is
	// refused.
	ErrUnavailable = errors.New("task: state unavailable")
	// ErrRevocationPending reports a task End marked ended whose
	// revocations could not be written yet: calls are refused by the
	// record, and every instance's sweep writes them once it can.
	ErrRevocationPending = errors.New("task: ended, revocation not yet written")
)

// maxAttempts bounds the revision-checked retries of one update: each
// failed attempt means another instance changed the record in between.
const maxAttempts = 64

// Store is the shared task state, with a local copy of every record kept
// current by a watch. Decisions read the copy; changes go to the bucket.
type Store struct {
	cfg      Config
	kv       jetstream.KeyValue
	revs     jetstream.KeyValue
	instance string
	log      *slog.Logger
	// Revoked reports whether the task's revocation is known; the sweep
	// rewrites the revocation of an ended task it is missing from (the
	// instance that ended it failed before writing it). Nil: never.
	revoked func(tenant, id string) bool
	// onEnd is called by the instance that ended a task, once its
	// revocations are written.
	onEnd func(Record)
	// emit records the revoked events of an ended task whose events are
	// pending past their claim's lease (the instance emitting them died).
	emit func(context.Context, Record) error
	now  func() time.Time

	mu    sync.RWMutex
	local map[string]entry
	live  map[string]int // live tasks in local, by tenant
	ready chan struct{}  // closed when the watch has delivered the bucket
}

type entry struct {
	rec Record
	rev uint64
}

// Option changes how New builds a Store.
type Option func(*Store)

// WithClock sets the store's clock.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// OnEnd has fn called, by the instance that ended a task, with the ended
// record once its revocations are written.
func OnEnd(fn func(Record)) Option { return func(s *Store) { s.onEnd = fn } }

// OnUnrecorded has fn called, by the one instance whose sweep claims it,
// with an ended task whose revoked events were never confirmed recorded;
// its success confirms them.
func OnUnrecorded(fn func(context.Context, Record) error) Option {
	return func(s *Store) { s.emit = fn }
}

// KnownRevoked lets the sweep find ended tasks whose revocation is missing.
func KnownRevoked(fn func(tenant, id string) bool) Option { return func(s *Store) { s.revoked = fn } }

// New returns a store over the tasks and revocations buckets; Run keeps
// its copy current and ends expired tasks.
func New(cfg Config, tasks, revocations jetstream.KeyValue, instance string, log *slog.Logger, opts ...Option) *Store {
	cfg.SetDefaults()
	s := &Store{cfg: cfg, kv: tasks, revs: revocations, instance: instance, log: log, now: time.Now,
		local: map[string]entry{}, live: map[string]int{}, ready: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Config is the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// Ready is closed once the local copy holds the whole bucket.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Run watches the bucket into the local copy and sweeps for expired
// tasks until ctx ends. The watch resumes by itself after a reconnect.
func (s *Store) Run(ctx context.Context) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("task: watch %s: %w", stream.Tasks, err)
	}
	defer func() { _ = w.Stop() }()
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			s.apply(e)
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

func (s *Store) apply(e jetstream.KeyValueEntry) {
	if e == nil {
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		s.drop(e.Key())
		return
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		s.log.Warn("task record unreadable, ignored", "key", e.Key(), "err", err)
		return
	}
	if old, ok := s.local[e.Key()]; ok && old.rev > e.Revision() {
		return // an update of ours already brought a newer one
	}
	s.set(e.Key(), entry{rec: r, rev: e.Revision()})
}

// set and drop change the local copy, keeping the count of each tenant's
// live tasks. The caller holds mu.
func (s *Store) set(key string, e entry) {
	s.drop(key)
	s.local[key] = e
	if e.rec.Ended == "" {
		s.live[e.rec.Tenant]++
	}
}

func (s *Store) drop(key string) {
	old, ok := s.local[key]
	if !ok {
		return
	}
	delete(s.local, key)
	if old.rec.Ended == "" {
		if s.live[old.rec.Tenant]--; s.live[old.rec.Tenant] <= 0 {
			delete(s.live, old.rec.Tenant)
		}
	}
}

// full reports whether tenant has max_per_tenant live tasks already.
func (s *Store) full(tenant string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live[tenant] >= s.cfg.MaxPerTenant
}

// View returns the local copy of tenant's task id, if it has one. It may
// lag the bucket by the watch's delivery time; Charge and End do not.
func (s *Store) View(tenant, id string) (Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.local[stream.TaskKey(tenant, id)]
	return e.rec, ok
}

// Declare stores the record of a newly declared task.
func (s *Store) Declare(ctx context.Context, r *Record) error {
	if s.revoked != nil && s.revoked(r.Tenant, r.ID) {
		return fmt.Errorf("%w: task %q ended before", ErrExists, r.ID)
	}
	if s.full(r.Tenant) {
		return ErrFull
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := stream.TaskKey(r.Tenant, r.ID)
	rev, err := s.kv.Create(ctx, key, b)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: task %q", ErrExists, r.ID)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.remember(key, *r, rev)
	return nil
}

// Undeclare removes a declared task nothing has used yet: its
// declaration could not be recorded.
func (s *Store) Undeclare(ctx context.Context, r *Record) error {
	return s.kv.Delete(ctx, stream.TaskKey(r.Tenant, r.ID))
}

// Call is one allowed call under a task, as Charge applies it.
type Call struct {
	Tenant, ID, Issuer, Subject string
	// ClientChosen marks an id the client sent (a header): an undeclared
	// task it starts is bound to the caller.
	ClientChosen bool
	// Credential, when set, was minted for the call and joins the record,
	// so the task's end revokes it.
	Credential *Credential
}

// Charge applies one allowed call to its task, starting an undeclared
// task with it: it refuses the call when the task ended (ErrEnded,
// ending it first when it is past its deadline or idle), belongs to
// another principal (ErrForeign), has spent its budget (ErrBudget) or
// holds too many credentials; otherwise it counts the call, marks the
// task active and adds the credential. The update is revision-checked:
// a call that reaches the record after the task ended is refused. A call
// with nothing to write (see check) reads the record instead.
func (s *Store) Charge(ctx context.Context, c Call) (Record, error) {
	now := s.now()
	if r, ok, err := s.check(ctx, c, now); ok {
		return r, err
	}
	var over string
	r, err := s.update(ctx, c.Tenant, c.ID, true, func(r *Record, exists bool) error {
		if !exists {
			if s.full(c.Tenant) {
				return ErrFull
			}
			*r = Record{Tenant: c.Tenant, ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, Bound: c.ClientChosen,
				Started: now.UTC(), Deadline: now.Add(s.cfg.MaxTaskDuration).UTC(), LastActive: now.UTC()}
		}
		switch {
		case !r.MayAct(c.Issuer, c.Subject):
			return ErrForeign // before ended: nothing of it is told another principal
		case r.Ended != "":
			return fmt.Errorf("%w: %s", ErrEnded, r.Ended)
		}
		if over = r.Expired(now, s.cfg.IdleTimeout); over != "" {
			return fmt.Errorf("%w: %s", ErrEnded, over)
		}
		if r.MaxCalls > 0 && r.Calls >= r.MaxCalls {
			return fmt.Errorf("%w: %d of %d", ErrBudget, r.Calls, r.MaxCalls)
		}
		if c.Credential != nil {
			if len(r.Credentials) >= s.cfg.MaxCredentials {
				return ErrCredentials
			}
			r.Credentials = append(slices.Clip(r.Credentials), *c.Credential)
		}
		r.Calls++
		r.LastActive = now.UTC()
		return nil
	})
	if over != "" {
		s.endExpired(ctx, c.Tenant, c.ID, over)
	}
	return r, err
}

// check is Charge for a call that changes nothing worth a write: its
// task has no budget, it brings no credential, and the task was marked
// active less than a quarter of task_idle_timeout ago. It reads the
// record from the bucket instead of updating it, so the calls of a busy
// task do not contend for one key, and still sees an end written before
// it. It reports false when the call needs the update.
func (s *Store) check(ctx context.Context, c Call, now time.Time) (Record, bool, error) {
	if c.Credential != nil {
		return Record{}, false, nil
	}
	key := stream.TaskKey(c.Tenant, c.ID)
	s.mu.RLock()
	cur, ok := s.local[key]
	s.mu.RUnlock()
	if !ok || cur.rec.MaxCalls > 0 || now.Sub(cur.rec.LastActive) >= s.cfg.IdleTimeout/4 {
		return Record{}, false, nil
	}
	e, err := s.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Record{}, false, nil
		}
		return Record{}, true, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, true, fmt.Errorf("%w: record unreadable: %v", ErrUnavailable, err)
	}
	switch {
	case !r.MayAct(c.Issuer, c.Subject):
		return r, true, ErrForeign
	case r.Ended != "":
		return r, true, fmt.Errorf("%w: %s", ErrEnded, r.Ended)
	case r.MaxCalls > 0 || now.Sub(r.LastActive) >= s.cfg.IdleTimeout/4 || r.Expired(now, s.cfg.IdleTimeout) != "":
		return Record{}, false, nil // changed since: the update decides
	}
	return r, true, nil
}

// End ends tenant's task id for reason, unless check (when not nil)
// refuses. It reports whether this call ended it: of all the instances
// that try, the one whose revision-checked update marks the record ended
// does, and only it writes the revocations; its caller records the
// credentials' revocation (the sweep calls OnEnd). A task that ended
// already is ErrEnded.
func (s *Store) End(ctx context.Context, tenant, id, reason string, check func(*Record) error) (Record, error) {
	now := s.now()
	r, err := s.update(ctx, tenant, id, false, func(r *Record, _ bool) error {
		if r.Ended != "" {
			return fmt.Errorf("%w: %s", ErrEnded, r.Ended)
		}
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		if reason != EndCompleted && r.Expired(now, s.cfg.IdleTimeout) != reason {
			return errNotExpired // called again and active since
		}
		r.Ended, r.EndedAt, r.EndedBy = reason, now.UTC(), s.instance
		// The ender owns the revoked events; should it die before they
		// are recorded, the outbox outlives it.
		r.EventsPending = len(r.Credentials) > 0
		r.EventsClaimedBy, r.EventsClaimedAt = s.instance, now.UTC()
		return nil
	})
	if err != nil {
		return r, err
	}
	if err := s.writeRevocations(ctx, &r); err != nil {
		// The record says ended: calls are refused by Charge, and every
		// instance's sweep rewrites the missing revocation.
		s.log.Error("task ended, revocation not yet written", "tenant", tenant, "task", id, "err", err)
		return r, fmt.Errorf("%w: %v", ErrRevocationPending, err)
	}
	return r, nil
}

// endExpired ends a task past its deadline or idle and hands the ended
// record to OnEnd, when this instance is the one that ended it.
func (s *Store) endExpired(ctx context.Context, tenant, id, reason string) {
	r, err := s.End(ctx, tenant, id, reason, nil)
	switch {
	case err == nil:
		if s.onEnd != nil {
			s.onEnd(r)
		}
	case !errors.Is(err, ErrEnded) && !errors.Is(err, errNotExpired):
		s.log.Warn("task not ended yet", "tenant", tenant, "task", id, "reason", reason, "err", err)
	}
}

var errNotExpired = errors.New("task: not expired")

// ConfirmEvents records that the revoked events of tenant's ended task id
// are on the record, emptying its outbox.
func (s *Store) ConfirmEvents(ctx context.Context, tenant, id string) error {
	_, err := s.update(ctx, tenant, id, false, func(r *Record, _ bool) error {
		if !r.EventsPending {
			return errNothingPending
		}
		r.EventsPending, r.EventsClaimedBy, r.EventsClaimedAt = false, "", time.Time{}
		return nil
	})
	if errors.Is(err, errNothingPending) {
		return nil
	}
	return err
}

var errNothingPending = errors.New("task: no events pending")

// eventsLease is how long the revoked events of an ended task are left to
// the instance that claimed them before another sweep claims them: well
// past a publish's timeout and its retries.
func (s *Store) eventsLease() time.Duration { return max(10*s.cfg.SweepInterval, 5*time.Second) }

// reemit claims the pending revoked events of r, when their claim's lease
// ran out, emits them and confirms them. Of the instances that try, the
// one whose revision-checked claim lands emits them.
func (s *Store) reemit(ctx context.Context, r Record) {
	now := s.now()
	claimed, err := s.update(ctx, r.Tenant, r.ID, false, func(r *Record, _ bool) error {
		if !r.EventsPending || now.Sub(r.EventsClaimedAt) < s.eventsLease() {
			return errNothingPending // confirmed, or claimed afresh, meanwhile
		}
		r.EventsClaimedBy, r.EventsClaimedAt = s.instance, now.UTC()
		return nil
	})
	if err != nil {
		if !errors.Is(err, errNothingPending) {
			s.log.Warn("revoked events not claimed yet", "tenant", r.Tenant, "task", r.ID, "err", err)
		}
		return
	}
	if err := s.emit(ctx, claimed); err != nil {
		s.log.Warn("revoked events not recorded yet", "tenant", r.Tenant, "task", r.ID, "err", err)
		return
	}
	if err := s.ConfirmEvents(ctx, r.Tenant, r.ID); err != nil {
		s.log.Warn("revoked events recorded, not yet confirmed", "tenant", r.Tenant, "task", r.ID, "err", err)
	}
}

// writeRevocations records r's end in the revocations bucket: the task's
// key, then one per credential minted under it.
func (s *Store) writeRevocations(ctx context.Context, r *Record) error {
	until := r.latestExpiry()
	put := func(key string, v stream.Revocation) error {
		b, err := json.Marshal(v)
		if err == nil {
			_, err = s.revs.Put(ctx, key, b)
		}
		return err
	}
	base := stream.Revocation{Tenant: r.Tenant, TaskID: r.ID, Reason: r.Ended, By: r.EndedBy, RevokedAt: r.EndedAt, Until: until}
	if err := put(stream.TaskRevocationKey(r.Tenant, r.ID), base); err != nil {
		return err
	}
	for _, c := range r.Credentials {
		v := base
		v.JTI, v.Until = c.JTI, c.Expires
		if err := put(stream.JTIRevocationKey(c.JTI), v); err != nil {
			return err
		}
	}
	return nil
}

// update applies fn to the record of tenant's task id, creating it when
// it is absent and create is set, in a revision-checked write retried on
// conflict. fn's error is returned as is, and nothing is written.
func (s *Store) update(ctx context.Context, tenant, id string, create bool, fn func(r *Record, exists bool) error) (Record, error) {
	key := stream.TaskKey(tenant, id)
	s.mu.RLock()
	cur, ok := s.local[key]
	s.mu.RUnlock()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 || !ok {
			e, err := s.kv.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				ok, cur = false, entry{}
			case err != nil:
				return Record{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
			default:
				var r Record
				if err := json.Unmarshal(e.Value(), &r); err != nil {
					return Record{}, fmt.Errorf("%w: record unreadable: %v", ErrUnavailable, err)
				}
				ok, cur = true, entry{rec: r, rev: e.Revision()}
			}
		}
		if !ok && !create {
			return Record{}, fmt.Errorf("%w: %q", ErrUnknown, id)
		}
		r := cur.rec
		if err := fn(&r, ok); err != nil {
			return r, err
		}
		b, err := json.Marshal(r)
		if err != nil {
			return r, err
		}
		var rev uint64
		if ok {
			rev, err = s.kv.Update(ctx, key, b, cur.rev)
		} else {
			rev, err = s.kv.Create(ctx, key, b)
		}
		if err == nil {
			s.remember(key, r, rev)
			return r, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return Record{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		ok = true // changed under us: read it again
	}
	return Record{}, fmt.Errorf("%w: %d conflicting updates in a row", ErrUnavailable, maxAttempts)
}

// remember puts a record this instance wrote into the local copy at once,
// so the next call need not wait for the watch to bring it.
func (s *Store) remember(key string, r Record, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.local[key]; !ok || old.rev < rev {
		s.set(key, entry{rec: r, rev: rev})
	}
}

// sweep ends the tasks of the local copy past their deadline or idle,
// rewrites revocations missing for ended ones, and forgets records ended
// long enough ago (Charge reads the bucket for them).
func (s *Store) sweep(ctx context.Context) {
	now := s.now()
	type due struct{ tenant, id, reason string }
	var ends []due
	var repair, unrecorded []Record
	s.mu.Lock()
	for k, e := range s.local {
		r := &e.rec
		switch {
		case r.Ended == "":
			if reason := r.Expired(now, s.cfg.IdleTimeout); reason != "" {
				ends = append(ends, due{r.Tenant, r.ID, reason})
			}
		case r.EventsPending && s.emit != nil && now.Sub(r.EventsClaimedAt) >= s.eventsLease():
			// Kept, however long ago it ended, until its events are on
			// the record.
			unrecorded = append(unrecorded, *r)
		case now.Sub(r.EndedAt) > time.Minute && !(r.EventsPending && s.emit != nil):
			s.drop(k)
		case s.revoked != nil && now.Sub(r.EndedAt) > 2*s.cfg.SweepInterval && !s.revoked(r.Tenant, r.ID):
			repair = append(repair, *r)
		}
	}
	s.mu.Unlock()
	for _, r := range unrecorded {
		if ctx.Err() != nil {
			return
		}
		if s.revoked != nil && !s.revoked(r.Tenant, r.ID) {
			repair = append(repair, r) // the revocation first, then its events
			continue
		}
		s.reemit(ctx, r)
	}
	for _, d := range ends {
		if ctx.Err() != nil {
			return
		}
		s.endExpired(ctx, d.tenant, d.id, d.reason)
	}
	for i := range repair {
		if err := s.writeRevocations(ctx, &repair[i]); err != nil {
			s.log.Warn("task revocation not rewritten yet", "tenant", repair[i].Tenant, "task", repair[i].ID, "err", err)
		}
	}
}
