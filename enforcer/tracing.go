package enforcer

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Traces: the enforcer continues the caller's W3C trace (traceparent,
// tracestate) with a span per decision, "rampart.decide", and child spans
// for what it spends its time on — "rampart.identity", "rampart.policy",
// "rampart.record" — then hands the trace on to the backend, so that
// Rampart's share of every tool call shows in the tracing tool the
// platform already runs. The tracer is the global provider's when one is
// installed (telemetry does, for OTLP); otherwise the enforcer keeps none
// and the decision path does no tracing work at all.

// tracerName is the instrumentation scope of the enforcer's spans.
const tracerName = "github.com/rampart-io/rampart/enforcer"

// traceContext reads and writes W3C trace context, whatever propagator the
// process installed: the record keeps traceparent, so it is the format.
var traceContext = propagation.TraceContext{}

// installedTracer returns tp's tracer for the enforcer, or nil when tp is
// a no-op. A no-op tracer hands a child span its parent's span context,
// where every real one gives it an id of its own; the probe's parent is
// not sampled, so a provider that honours its parent (the SDK's default)
// records and exports nothing of it.
func installedTracer(tp trace.TracerProvider) trace.Tracer {
	tracer := tp.Tracer(tracerName)
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x72, 0x61, 0x6d, 0x70}, SpanID: trace.SpanID{0x72, 0x61}, Remote: true,
	})
	_, probe := tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "rampart.tracer_probe")
	defer probe.End()
	if probe.SpanContext().SpanID() == parent.SpanID() {
		return nil
	}
	return tracer
}

// startDecision starts the decision's span as a child of the caller's
// trace; nil when nothing traces.
func (e *Enforcer) startDecision(ctx context.Context, header http.Header) (context.Context, trace.Span) {
	if e.tracer == nil {
		return ctx, nil
	}
	ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(header))
	return e.tracer.Start(ctx, "rampart.decide", trace.WithSpanKind(trace.SpanKindServer))
}

// startSpan starts a child of the decision; nil when nothing traces.
func (e *Enforcer) startSpan(ctx context.Context, name string) trace.Span {
	if e.tracer == nil {
		return nil
	}
	_, span := e.tracer.Start(ctx, name)
	return span
}

func endSpan(span trace.Span) {
	if span != nil {
		span.End()
	}
}

// endDecision ends span with what was decided.
func endDecision(span trace.Span, o *outcome) {
	if span == nil {
		return
	}
	o.span = span.SpanContext()
	if span.IsRecording() {
		effect := "deny"
		if o.allow {
			effect = "allow"
		}
		span.SetAttributes(
			attribute.String("rampart.request_id", o.id),
			attribute.String("rampart.tenant", o.x.tenant()),
			attribute.String("rampart.effect", effect),
			attribute.String("rampart.code", string(o.code)),
		)
		if o.code == CodeAuditUnavailable {
			span.SetStatus(codes.Error, "events not recorded")
		}
	}
	span.End()
}

// propagate writes the decision's trace context into the request for the
// backend, replacing the caller's: the backend's spans become children of
// Rampart's. With a no-op tracer the span context is the caller's own, so
// the backend sees what the caller sent.
func propagate(span trace.SpanContext, h http.Header) {
	if !span.IsValid() {
		return
	}
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), span), propagation.HeaderCarrier(h))
}
