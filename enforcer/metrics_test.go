package enforcer

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestMetricsObserve: each outcome is counted under its effect and code,
// and a decided one's duration recorded; the refusals alerts watch exist
// from zero.
func TestMetricsObserve(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.observe(ctx, true, "", time.Now().Add(-time.Millisecond))
	m.observe(ctx, true, "", time.Now())
	m.observe(ctx, false, CodePolicyDenied, time.Now())
	m.observe(ctx, false, CodeOverloaded, time.Time{})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	var durations uint64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					e, _ := p.Attributes.Value("effect")
					c, _ := p.Attributes.Value("code")
					counts[e.AsString()+"/"+c.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					durations += p.Count
				}
			}
		}
	}
	want := map[string]int64{"allow/": 2, "deny/policy_denied": 1, "deny/overloaded": 1, "deny/audit_unavailable": 0}
	for k, v := range want {
		if got, ok := counts[k]; !ok || got != v {
			t.Errorf("requests %s = %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
	if durations != 3 {
		t.Errorf("%d durations recorded, want 3 (the overloaded request was never decided)", durations)
	}
}

// BenchmarkMetricsObserve is what counting one request adds to its
// decision: with no meter provider (the default: the global no-op) and
// with the SDK's, as `RAMPART_METRICS_LISTEN` or OTLP installs it.
// go test -run '^$' -bench 'MetricsObserve|DecisionPath' -benchmem ./enforcer/
func BenchmarkMetricsObserve(b *testing.B) {
	for _, name := range []string{"noop", "sdk"} {
		b.Run(name, func(b *testing.B) {
			var mp metric.MeterProvider = noop.NewMeterProvider()
			if name == "sdk" {
				mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			}
			m, err := newMetrics(mp)
			if err != nil {
				b.Fatal(err)
			}
			ctx, start := context.Background(), time.Now()
			b.ReportAllocs()
			for b.Loop() {
				m.observe(ctx, false, CodePolicyDenied, start)
			}
		})
	}
}
