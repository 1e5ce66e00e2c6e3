// Package telemetry exports Rampart's own metrics and traces with
// OpenTelemetry. Metrics go to whichever of two places is configured: over
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set (the exporter reads the
// standard OTEL_* variables), and for Prometheus to scrape on an opt-in
// /metrics listener when RAMPART_METRICS_LISTEN names an address, which
// also answers the process's health probes (package health)
// (OpenTelemetry's Prometheus exporter: names follow the OTel-to-Prometheus
// conventions, rampart.collector.events becoming
// rampart_collector_events_total). Traces go over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
// propagated as W3C trace context. Unconfigured, the global providers stay
// no-ops and components' instruments and spans cost nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rampart-io/rampart/component/health"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// EnvMetricsListen is the environment variable that turns the /metrics
// listener on: host:port (":9464" is OpenTelemetry's customary port).
const EnvMetricsListen = "RAMPART_METRICS_LISTEN"

// Options say where metrics go.
type Options struct {
	// OTLP pushes metrics over OTLP/HTTP, configured by the OTEL_* variables.
	OTLP bool
	// OTLPTraces exports spans over OTLP/HTTP, configured likewise.
	OTLPTraces bool
	// MetricsListen serves /metrics for Prometheus on this address; empty
	// serves nothing.
	MetricsListen string
	// Probe, when set, is served on the same listener: /healthz and
	// /readyz, so an orchestrator probes the port it scrapes.
	Probe *health.Probe
}

// OptionsFromEnv reads the options from the environment.
func OptionsFromEnv() Options {
	return Options{
		OTLP:          os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "",
		OTLPTraces:    os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "",
		MetricsListen: os.Getenv(EnvMetricsListen),
	}
}

// Telemetry is an installed meter provider and its /metrics listener.
type Telemetry struct {
	// MetricsAddr is the address /metrics is served on, "" when it is not.
	MetricsAddr string
	mp          *sdkmetric.MeterProvider
	tp          *sdktrace.TracerProvider
	srv         *http.Server
	served      chan error
}

// Setup installs the meter provider for service as the environment says,
// serving probe beside /metrics, and returns its shutdown, which flushes
// what is pending.
func Setup(ctx context.Context, service string, probe *health.Probe) (func(context.Context) error, error) {
	o := OptionsFromEnv()
	o.Probe = probe
	t, err := Start(ctx, service, o)
	if err != nil {
		return nil, err
	}
	return t.Shutdown, nil
}

// Start installs the global meter and tracer providers for service with o's
// exporters. With none, it installs nothing.
func Start(ctx context.Context, service string, o Options) (*Telemetry, error) {
	t := &Telemetry{}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		return nil, err
	}
	if o.OTLPTraces {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: trace exporter: %w", err)
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		otel.SetTracerProvider(t.tp)
		otel.SetTextMapPropagator(propagation.TraceContext{})
	}
	var opts []sdkmetric.Option
	if o.OTLP {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, err
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	if o.MetricsListen != "" {
		// A registry of Rampart's own: no Go runtime or process collectors
		// beyond what OpenTelemetry reports, and no global state.
		reg := prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		ln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
		if o.Probe != nil {
			o.Probe.Register(mux)
		}
		t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		t.MetricsAddr = ln.Addr().String()
		t.served = make(chan error, 1)
		go func() { t.served <- t.srv.Serve(ln) }()
		slog.Info("serving metrics for Prometheus", "addr", "http://"+t.MetricsAddr+"/metrics")
		opts = append(opts, sdkmetric.WithReader(exp))
	}
	if len(opts) == 0 {
		return t, nil
	}
	t.mp = sdkmetric.NewMeterProvider(append(opts, sdkmetric.WithResource(res))...)
	otel.SetMeterProvider(t.mp)
	return t, nil
}

// Shutdown stops the listener and flushes the provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.srv != nil {
		errs = append(errs, t.srv.Shutdown(ctx))
		if err := <-t.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
