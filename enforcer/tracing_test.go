package enforcer

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerParent  = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// traced sends one tools/call through e's handler with the caller's
// traceparent and returns the status and the traceparent the backend got.
func traced(t *testing.T, tool string, tracer trace.Tracer) (int, string, *Enforcer) {
	t.Helper()
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Traceparent")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`))
	}))
	t.Cleanup(backend.Close)
	e, token := testEnforcer(t, false, backend.URL)
	e.tracer = tracer
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"q":"x"}}}`
	req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", callerParent)
	w := httptest.NewRecorder()
	e.Handler().ServeHTTP(w, req)
	select {
	case tp := <-got:
		return w.Code, tp, e
	default:
		return w.Code, "", e
	}
}

// TestDecisionContinuesTheCallersTrace: the decision is a span of the
// caller's trace, its identity, policy and recording are its children, and
// the backend's request carries the decision as its parent.
func TestDecisionContinuesTheCallersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tracer := installedTracer(tp)
	if tracer == nil {
		t.Fatal("the SDK's provider was taken for a no-op")
	}
	status, backendParent, _ := traced(t, "search", tracer)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.Name() == "rampart.tracer_probe" {
			t.Errorf("the probe span was recorded: %v", s.SpanContext())
		}
		byName[s.Name()] = s
	}
	decide, ok := byName["rampart.decide"]
	if !ok {
		t.Fatalf("no decision span among %v", byName)
	}
	if decide.SpanContext().TraceID().String() != callerTraceID || decide.Parent().SpanID().String() != callerSpanID || !decide.Parent().IsRemote() {
		t.Errorf("decision span %v, parent %v: not a child of the caller's span", decide.SpanContext(), decide.Parent())
	}
	if decide.SpanKind() != trace.SpanKindServer {
		t.Errorf("decision span kind %v", decide.SpanKind())
	}
	for _, name := range []string{"rampart.identity", "rampart.policy", "rampart.record"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %s span", name)
			continue
		}
		if s.Parent().SpanID() != decide.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the decision span", name, s.Parent().SpanID())
		}
	}
	attrs := map[string]string{}
	for _, a := range decide.Attributes() {
		attrs[string(a.Key)] = a.Value.AsString()
	}
	if attrs["rampart.effect"] != "allow" || attrs["rampart.tenant"] != "acme" || attrs["rampart.request_id"] == "" {
		t.Errorf("decision span attributes %v", attrs)
	}
	want := "00-" + callerTraceID + "-" + decide.SpanContext().SpanID().String() + "-01"
	if backendParent != want {
		t.Errorf("backend got traceparent %q, want %q (the decision as its parent)", backendParent, want)
	}
}

// TestDeniedDecisionIsTraced: a denial is a span too, and nothing reaches
// the backend.
func TestDeniedDecisionIsTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	status, backendParent, _ := traced(t, "shell", tp.Tracer(tracerName))
	if status == http.StatusOK || backendParent != "" {
		t.Fatalf("status %d, backend saw %q", status, backendParent)
	}
	for _, s := range rec.Ended() {
		if s.Name() == "rampart.decide" {
			for _, a := range s.Attributes() {
				if a.Key == "rampart.effect" && a.Value.AsString() != "deny" {
					t.Errorf("effect %v", a.Value)
				}
			}
			return
		}
	}
	t.Fatal("no decision span")
}

// TestUntracedPassesTheCallersTraceOn: with the no-op tracer (nothing
// configured), the backend gets the caller's traceparent as it was sent.
func TestUntracedPassesTheCallersTraceOn(t *testing.T) {
	if installedTracer(noop.NewTracerProvider()) != nil {
		t.Fatal("the no-op provider was taken for a real one")
	}
	status, backendParent, e := traced(t, "search", installedTracer(noop.NewTracerProvider()))
	if e.tracer != nil {
		t.Fatal("a tracer kept")
	}
	if status != http.StatusOK || backendParent != callerParent {
		t.Fatalf("status %d, backend got %q, want the caller's %q", status, backendParent, callerParent)
	}
}

// BenchmarkDecisionSpans is what tracing adds to one decision — the
// caller's traceparent read, the decision span and its identity, policy
// and record children, the backend's traceparent written — with the no-op
// tracer (nothing configured) and with the SDK sampling every span (no
// exporter: the spans' own cost).
// go test -run '^$' -bench 'DecisionSpans|DecisionPath' -benchmem ./enforcer/
func BenchmarkDecisionSpans(b *testing.B) {
	for _, name := range []string{"noop", "sdk"} {
		b.Run(name, func(b *testing.B) {
			// As New chooses it: none for the no-op provider.
			tracer := installedTracer(noop.NewTracerProvider())
			if name == "sdk" {
				// Spans made and recorded, then dropped: no exporter's cost.
				tp := sdktrace.NewTracerProvider()
				defer tp.Shutdown(context.Background())
				tracer = installedTracer(tp)
			}
			e := &Enforcer{tracer: tracer}
			in := http.Header{"Traceparent": {callerParent}}
			out := http.Header{}
			o := &outcome{id: "r", allow: true, x: &exchange{}}
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := e.startDecision(context.Background(), in)
				for _, child := range []string{"rampart.identity", "rampart.policy", "rampart.record"} {
					endSpan(e.startSpan(ctx, child))
				}
				endDecision(span, o)
				propagate(o.span, out)
			}
		})
	}
}
