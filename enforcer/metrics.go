package enforcer

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the enforcer's own instruments: every request's outcome, by
// effect and stable code, and how long deciding and recording it took
// (not the backend's answer). With no meter provider installed they are
// no-ops.
type metrics struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
	// opts caches the options of each effect and code: the codes are a
	// fixed table, so the cache is bounded, and a request allocates none.
	mu   sync.RWMutex
	opts map[attrKey]*attrOpts
}

type attrKey struct {
	allowed bool
	code    Code
}

type attrOpts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	meter := mp.Meter("github.com/rampart-io/rampart/enforcer")
	requests, err := meter.Int64Counter("rampart.enforcer.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests decided, by effect and code (empty when allowed)"))
	if err != nil {
		return nil, err
	}
	duration, err := meter.Float64Histogram("rampart.enforcer.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to identify, decide and record a request, before it is forwarded or refused"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	if err != nil {
		return nil, err
	}
	m := &metrics{requests: requests, duration: duration, opts: map[attrKey]*attrOpts{}}
	// The refusals alerts watch start at zero: a series that is born at 1
	// hides its first increase from increase() and rate().
	for _, c := range []Code{CodeOverloaded, CodeAuditUnavailable} {
		m.requests.Add(context.Background(), 0, m.optsFor(false, c).add...)
	}
	return m, nil
}

func (m *metrics) optsFor(allowed bool, code Code) *attrOpts {
	k := attrKey{allowed, code}
	m.mu.RLock()
	o := m.opts[k]
	m.mu.RUnlock()
	if o != nil {
		return o
	}
	effect := "deny"
	if allowed {
		effect = "allow"
	}
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String("effect", effect), attribute.String("code", string(code))))
	o = &attrOpts{add: []metric.AddOption{set}, rec: []metric.RecordOption{set}}
	m.mu.Lock()
	m.opts[k] = o
	m.mu.Unlock()
	return o
}

// observe counts one request and, when it was decided (start set), how
// long that took.
func (m *metrics) observe(ctx context.Context, allowed bool, code Code, start time.Time) {
	o := m.optsFor(allowed, code)
	m.requests.Add(ctx, 1, o.add...)
	if !start.IsZero() {
		m.duration.Record(ctx, time.Since(start).Seconds(), o.rec...)
	}
}
