package correlator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/component/lag"
	"github.com/rampart-io/rampart/correlator/record"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Detector is the detection engine as the correlator drives it
// (detect.Engine): ObserveAgent is given each event once, in stream order,
// with what the agent inventory says of its agent, and returns the alerts
// it completes; Advance returns the alerts of windows
// that lapsed by now. Alerts must be complete but for Instance, Seq, Epoch
// and Prev, with ids derived from what raised them, so the same input in
// the same order raises the same alerts.
type Detector interface {
	ObserveAgent(ev *event.Event, agent ddl.Agent) []*event.Event
	Advance(now time.Time) []*event.Event
}

// alertReader is a Detector with rules that take alerts as input. Other
// detectors never see alerts, so an alert cannot feed back into itself.
type alertReader interface{ WantsAlerts() bool }

// RulesPolicyID is the policy id of the correlator's rule reload events.
const RulesPolicyID = "rampart.detect"

// InstancePrefix begins every correlator instance name, so any consumer
// of the stream tells a correlator's records from an enforcer's by the
// instance alone, in replay as live, without state. No host name has a
// colon, so no enforcer's default name (its host's) can begin with it, and
// an enforcer refuses one that does.
const InstancePrefix = "correlator:"

// IsCorrelatorInstance reports whether instance names a correlator.
func IsCorrelatorInstance(instance string) bool { return strings.HasPrefix(instance, InstancePrefix) }

// Codes of the correlator's stable errors, in its events and logs.
const (
	// CodeRulesReloadFailed: a rule set failed to load; the last good one
	// keeps running.
	CodeRulesReloadFailed = "rules_reload_failed"
	// CodeAlertTenantMismatch: the engine raised an alert for another
	// tenant than the event that completed it; the alert is dropped.
	CodeAlertTenantMismatch = "alert_tenant_mismatch"
	// CodeAlertInvalid: the engine raised an alert that is not a valid
	// event (or whose tenant names no subject); it is dropped.
	CodeAlertInvalid = "alert_invalid"
)

// flushTimeout bounds how long one batch waits for its alerts to be
// recorded before it is given up and redelivered.
var flushTimeout = 30 * time.Second

// detection is the correlator's detection state: the engine, the alerts
// it raised that JetStream has not yet acknowledged, and what is needed to
// record each alert once.
type detection struct {
	log      *slog.Logger
	rules    *rules     // nil when the engine was given (WithDetector)
	lookback *lookbacks // nil when no rule looks back past the horizon
	interval time.Duration
	in       *stream.Reader
	part     Partition
	rec      *record.Publisher
	horizon  time.Duration
	lateness time.Duration
	alerts   bool // the engine reads alerts
	// inv is the agent inventory; its zero answer (no inventory) when
	// none is configured. Its reload keeps the last good one.
	inv *inventory.Inventory

	mu      sync.Mutex // one batch or tick at a time
	engine  Detector
	pending []*event.Event // raised, not yet acknowledged by JetStream
	// published holds the ids of alerts known to be stored (seen in the
	// stream at recovery, or acknowledged since), with when they were
	// learned: raised again, they are not republished.
	published map[string]time.Time
	// observed holds the stream sequences the engine has seen and when, so
	// a redelivered message is not counted twice; an entry lives while
	// redeliveries of it may still come.
	observed map[uint64]time.Time
	// seen lists observed sequences in the order they were (re)marked, so
	// forget pops the expired from its front instead of scanning the map;
	// an entry whose time the map no longer holds was refreshed since.
	seen []seenAt
	lag  metric.Registration
	// skipThrough is the last stream sequence recovery handled: the
	// durable consumer's deliveries up to it are acked unobserved.
	skipThrough uint64
	watermark   time.Time // latest event time observed
	lastBatch   time.Time
}

func newDetection(ctx context.Context, cfg Config, d Detector, rs *rules, log *slog.Logger) (*detection, error) {
	src := cfg.Source
	src.Consumer, src.BatchWait = cfg.detectConsumer(), cfg.Detect.BatchWait
	in, err := stream.Open(ctx, src, "rampart-correlator detect "+cfg.instance())
	if err != nil {
		return nil, fmt.Errorf("correlator: %w", err)
	}
	// The inventory before anything is recovered: the windows rebuilt
	// from the stream see the agents as live events will.
	inv, err := inventory.New(cfg.Inventory, "correlator", log)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("correlator: %w", err)
	}
	rec, err := record.New(in.JetStream(), cfg.instance(), cfg.Checkpoint, log)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("correlator: %w", err)
	}
	det := &detection{log: log, rules: rs, interval: cfg.Detect.ReloadInterval, in: in, part: cfg.Partition, rec: rec, horizon: cfg.Detect.Recovery.Horizon,
		lateness: 2 * cfg.Detect.BatchWait, engine: d, inv: inv, published: map[string]time.Time{}, observed: map[uint64]time.Time{}}
	if r, ok := d.(alertReader); ok {
		det.alerts = r.WantsAlerts()
	}
	if rs != nil {
		if det.lookback, err = newLookbacks(ctx, in.JetStream(), cfg.Stream, rs.set, cfg.Detect.Recovery.Horizon, log); err != nil {
			det.close()
			return nil, err
		}
	}
	if err := det.recover(ctx, in, cfg.Partition); err != nil {
		det.close()
		return nil, err
	}
	if err := det.instrument(); err != nil {
		det.close()
		return nil, err
	}
	if rs != nil {
		det.rulesLoaded(ctx, rs.hash, rs.source(), nil)
	}
	return det, nil
}

// run detects until ctx ends.
func (d *detection) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { d.tick(ctx) })
	wg.Go(func() { _ = d.inv.Run(ctx) }) // returns nil, when ctx ends
	if d.rules != nil && d.rules.cfg.RulesDir != "" {
		wg.Go(func() { d.watch(ctx, d.rules, d.interval) })
	}
	defer func() { cancel(); wg.Wait() }()
	return d.in.Run(ctx, d.log, d.handle)
}

// handle observes a batch and records its alerts; the batch is acked only
// when that succeeded.
func (d *detection) handle(ctx context.Context, b stream.Batch) error {
	for _, m := range b {
		seq := stream.StreamSeq(m)
		if seq <= d.skipThrough {
			// Recovery handled it: skip the decode too. skipThrough is
			// written only by recover, before run starts.
			d.observe(seq, nil)
			continue
		}
		if tenant, _, err := subject.Parse(m.Subject()); err == nil && !d.part.Judges(tenant) {
			// Another correlator's: DecodeMessageOn would make its events
			// this tenant's or fail, so its verdict is known undecoded.
			continue
		}
		events, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			continue // another tenant's subject: no one's events
		}
		d.observe(seq, events)
	}
	return d.flush(ctx)
}

// input reports whether the engine is given e: never a correlator's own
// records (alerts, unless a rule reads them; its checkpoints and rule
// reloads), so no finding feeds on itself and the shipped record rules
// (sequence gaps, unrecorded events) judge enforcers' chains only. An
// enforcer's checkpoints and policy events are input like any event.
func (d *detection) input(e *event.Event) bool {
	if e.Kind == event.KindAlert {
		return d.alerts
	}
	return !IsCorrelatorInstance(e.Instance)
}

// observe gives the engine a message's events unless it saw them already,
// and queues the alerts they complete.
func (d *detection) observe(seq uint64, events []*event.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observeLocked(seq, events)
}

func (d *detection) observeLocked(seq uint64, events []*event.Event) {
	now := time.Now()
	d.lastBatch = now
	if seq <= d.skipThrough {
		return
	}
	_, again := d.observed[seq]
	d.observed[seq] = now
	d.seen = append(d.seen, seenAt{seq, now})
	if again && seq != 0 {
		return
	}
	for _, e := range events {
		if !d.input(e) {
			continue
		}
		if e.Time.After(d.watermark) {
			d.watermark = e.Time
		}
		// Move the clock first: windows that lapse before e are any
		// tenant's, and their alerts carry their own tenant. Left to
		// Observe, they would come back with e's and be taken for
		// another tenant's, and dropped.
		d.advance(e.Time)
		d.queue(e.Tenant, d.engine.ObserveAgent(e, d.inv.Agent(e)))
	}
}

// queue adds alerts raised for tenant to the pending ones: alerts of
// that tenant, and tenant-less ones (a finding about an enforcer instance,
// across the tenants it serves), when this partition owns them. An alert
// for another tenant is an engine fault; it is dropped, loudly.
func (d *detection) queue(tenant string, alerts []*event.Event) {
	for _, a := range alerts {
		if a.Tenant != tenant && a.Tenant != "" {
			d.log.Error("alert dropped: raised for another tenant than its event", "code", CodeAlertTenantMismatch,
				"alert", a.ID, "alert_tenant", a.Tenant, "event_tenant", tenant)
			continue
		}
		d.keep(a)
	}
}

// keep queues a if this partition owns its tenant: the partition that
// judges every tenant's events for the tenant-less rules raises the
// others' alerts too, and leaves them to their owners.
func (d *detection) keep(a *event.Event) {
	if d.part.Owns(a.Tenant) {
		d.pending = append(d.pending, a)
	}
}

// flush advances the engine to the events' time and records every pending
// alert, in order; it fails when one could not be, leaving it pending.
func (d *detection) flush(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settle(ctx)
}

// settle is flush with d.mu held.
func (d *detection) settle(ctx context.Context) error {
	if !d.watermark.IsZero() {
		d.advance(d.watermark)
	}
	return d.record(ctx)
}

// advance collects the alerts of windows lapsed by now. Lapsed alerts
// have no completing event; each carries its own tenant. Called with d.mu held.
func (d *detection) advance(now time.Time) {
	for _, a := range d.engine.Advance(now) {
		d.keep(a)
	}
}

// record publishes the pending alerts. Called with d.mu held.
func (d *detection) record(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	for len(d.pending) > 0 {
		a := d.pending[0]
		if _, ok := d.published[a.ID]; ok || d.lookback.known(ctx, a) {
			d.pending = d.pending[1:]
			continue
		}
		if _, err := d.rec.Publish(ctx, a); errors.Is(err, record.ErrInvalid) {
			// An engine fault no retry mends: holding it would stop every
			// later alert.
			d.log.Error("alert dropped: invalid", "code", CodeAlertInvalid, "alert", a.ID, "err", err)
			d.pending = d.pending[1:]
			continue
		} else if err != nil {
			return fmt.Errorf("correlator: alert %s: %w", a.ID, err)
		}
		// Recorded now, or stored before: either way, once.
		d.published[a.ID] = time.Now()
		d.lookback.remember(ctx, a)
		d.pending = d.pending[1:]
	}
	return nil
}

// tick lapses windows by the wall clock while no batches come (under load,
// flush advances by the events' own time instead), and forgets what can
// no longer be redelivered or raised again.
func (d *detection) tick(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		now := time.Now()
		if now.Sub(d.lastBatch) >= time.Second {
			// Caught up: what has not arrived within lateness is not coming
			// (an enforcer records before it forwards).
			d.advance(now.Add(-d.lateness))
			if err := d.record(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("lapsed alerts not yet recorded; retrying", "err", err, "pending", len(d.pending))
			}
		}
		d.forget(now)
		d.mu.Unlock()
	}
}

type seenAt struct {
	seq uint64
	at  time.Time
}

// redeliveryHorizon is how long an observed message may still come back:
// well past the consumer's 30s ack wait.
const redeliveryHorizon = 2 * time.Minute

// forget drops observed sequences past redelivery and published ids past
// the recovery horizon. Called with d.mu held.
func (d *detection) forget(now time.Time) {
	n := 0
	for ; n < len(d.seen) && now.Sub(d.seen[n].at) > redeliveryHorizon; n++ {
		if x := d.seen[n]; d.observed[x.seq].Equal(x.at) {
			delete(d.observed, x.seq)
		}
	}
	d.seen = d.seen[n:] // the next growth of seen copies only what is left
	for id, at := range d.published {
		if now.Sub(at) > 2*d.horizon {
			delete(d.published, id)
		}
	}
}

// rulesLoaded records a rule set (re)load, or a failed one (the last good
// set keeps running, and its hash is the one recorded), as a policy event
// of the correlator's instance: what judged changes the meaning of every
// later alert, and of every missing one.
func (d *detection) rulesLoaded(ctx context.Context, hash, source string, err error) {
	dec := &event.Decision{Effect: event.EffectAllow, PolicyID: RulesPolicyID, PolicyHash: hash, Reason: "detection rules loaded from " + source}
	if err != nil {
		dec.Effect, dec.Code = event.EffectDeny, CodeRulesReloadFailed
		dec.Reason = fmt.Sprintf("reload of %s failed, %s still runs: %v", source, hash, err)
		d.log.Error("detection rules reload failed", "code", CodeRulesReloadFailed, "err", err)
	} else {
		d.log.Info("detection rules loaded", "hash", hash, "source", source)
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if _, perr := d.rec.Publish(ctx, &event.Event{Kind: event.KindPolicy, Decision: dec}); perr != nil {
		d.log.Error("rule reload not recorded", "err", perr)
	}
}

func (d *detection) close() {
	if d.lag != nil {
		_ = d.lag.Unregister()
	}
	d.rec.Close()
	d.in.Close()
	if d.rules != nil {
		d.rules.engine.Close()
	}
}

// instrument registers how far detections are behind the stream, beside
// the sessions' lag (rampart.correlator.lag): the two consumers move apart.
func (d *detection) instrument() error {
	m := otel.Meter("github.com/rampart-io/rampart/correlator")
	var err error
	d.lag, err = lag.Observe(m, "rampart.correlator.detect.lag",
		"Messages in the stream this correlator's detections have not yet judged", d.in.Lag)
	return err
}
