package telemetry

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/component/health"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// TestMetricsListener: instruments made through the global provider are
// served on /metrics under their Prometheus names; only GET /metrics is.
func TestMetricsListener(t *testing.T) {
	ctx := context.Background()
	tel, err := Start(ctx, "rampart-test", Options{MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	m := otel.Meter("github.com/rampart-io/rampart/test")
	c, _ := m.Int64Counter("rampart.test.events", metric.WithUnit("{event}"))
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("outcome", "stored")))
	h, _ := m.Float64Histogram("rampart.test.insert.duration", metric.WithUnit("s"))
	h.Record(ctx, 0.2)
	g, _ := m.Int64Gauge("rampart.test.spool.bytes", metric.WithUnit("By"))
	g.Record(ctx, 42)

	body := get(t, "http://"+tel.MetricsAddr+"/metrics", http.StatusOK)
	for _, want := range []string{
		`rampart_test_events_total{otel_scope_name="github.com/rampart-io/rampart/test"`,
		`outcome="stored"} 3`,
		`rampart_test_insert_duration_seconds_bucket{`,
		`rampart_test_spool_bytes{`,
		`target_info{`,
		`service_name="rampart-test"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	get(t, "http://"+tel.MetricsAddr+"/", http.StatusNotFound)
	req, _ := http.NewRequest(http.MethodPost, "http://"+tel.MetricsAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
}

func TestMetricsListenerRefusesABadAddress(t *testing.T) {
	if _, err := Start(context.Background(), "x", Options{MetricsListen: "127.0.0.1:99999"}); err == nil {
		t.Fatal("a listener on port 99999 started")
	}
}

// TestNothingConfigured installs no provider.
func TestNothingConfigured(t *testing.T) {
	tel, err := Start(context.Background(), "x", Options{})
	if err != nil || tel.MetricsAddr != "" || tel.mp != nil {
		t.Fatalf("%+v %v", tel, err)
	}
}

func get(t *testing.T, url string, status int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, status)
	}
	return string(b)
}

// TestTracesInstalled: with OTLP traces configured, spans are recorded
// (sampled, under the caller's trace) and W3C trace context is the
// propagator.
func TestTracesInstalled(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
	ctx := context.Background()
	tel, err := Start(ctx, "rampart-test", Options{OTLPTraces: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx) // the endpoint is closed: the flush fails, by design
	}()
	_, span := otel.Tracer("test").Start(ctx, "x")
	defer span.End()
	if !span.IsRecording() || !span.SpanContext().IsSampled() {
		t.Fatalf("span %v not recorded", span.SpanContext())
	}
	if f := otel.GetTextMapPropagator().Fields(); len(f) == 0 || f[0] != "traceparent" {
		t.Errorf("propagator fields %v", f)
	}
}

// TestProbesOnTheMetricsListener: the process's probes are answered on the
// metrics port, the readiness one following the probe's state; without a
// probe they are not served.
func TestProbesOnTheMetricsListener(t *testing.T) {
	ctx := context.Background()
	p := health.NewProbe()
	tel, err := Start(ctx, "rampart-test", Options{MetricsListen: "127.0.0.1:0", Probe: p})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	base := "http://" + tel.MetricsAddr
	get(t, base+health.LivePath, http.StatusOK)
	get(t, base+health.ReadyPath, http.StatusServiceUnavailable)
	p.Ready()
	if body := get(t, base+health.ReadyPath, http.StatusOK); !strings.Contains(body, `"ready"`) {
		t.Errorf("ready body %q", body)
	}

	bare, err := Start(ctx, "rampart-test", Options{MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Shutdown(ctx)
	get(t, "http://"+bare.MetricsAddr+health.ReadyPath, http.StatusNotFound)
}
