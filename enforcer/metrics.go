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
	// attrs caches one attribute set per effect and code: the codes are a
	// fixed table, so the cache is bounded, and requests allocate none.
	attrs sync.Map // string -> metric.MeasurementOption
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
	m := &metrics{requests: requests, duration: duration}
	// The refusals alerts watch start at zero: a series that is born at 1
	// hides its first increase from increase() and rate().
	for _, c := range []Code{CodeOverloaded, CodeAuditUnavailable} {
		m.requests.Add(context.Background(), 0, m.attrsFor(false, c))
	}
	return m, nil
}

func (m *metrics) attrsFor(allowed bool, code Code) metric.MeasurementOption {
	effect := "deny"
	if allowed {
		effect = "allow"
	}
	key := effect + "/" + string(code)
	if a, ok := m.attrs.Load(key); ok {
		return a.(metric.MeasurementOption)
	}
	a := metric.WithAttributeSet(attribute.NewSet(attribute.String("effect", effect), attribute.String("code", string(code))))
	m.attrs.Store(key, a)
	return a
}

// observe counts o and, when it was decided (start set), how long it took.
func (m *metrics) observe(ctx context.Context, allowed bool, code Code, start time.Time) {
	a := m.attrsFor(allowed, code)
	m.requests.Add(ctx, 1, a)
	if !start.IsZero() {
		m.duration.Record(ctx, time.Since(start).Seconds(), a)
	}
}
