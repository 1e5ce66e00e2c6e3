// Package health answers an orchestrator's probes for one process:
// /healthz (live: the process serves HTTP) and /readyz (ready: its
// component has connected to what it needs and is running, and is not
// stopping). The verb that runs a component says when it is ready; the
// telemetry listener (RAMPART_METRICS_LISTEN) serves the probes beside
// /metrics, so a process has one admin port.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// The probes' paths, as Kubernetes manifests and systemd units name them.
const (
	LivePath  = "/healthz"
	ReadyPath = "/readyz"
)

// The states a probe reports, in the JSON body's "status".
const (
	StatusStarting = "starting"
	StatusReady    = "ready"
	StatusStopping = "stopping"
)

// Probe is a process's readiness. The zero value is starting; a nil *Probe
// ignores every call, so a component run without probes needs no check.
type Probe struct {
	state atomic.Int32 // an index into statuses
}

var statuses = [...]string{StatusStarting, StatusReady, StatusStopping}

const (
	starting int32 = iota
	ready
	stopping
)

// NewProbe returns a probe that is starting.
func NewProbe() *Probe { return &Probe{} }

// Ready marks the component started: New has connected to NATS (and
// ClickHouse) and ensured its streams, and Run is about to begin.
func (p *Probe) Ready() { p.set(ready) }

// Stopping marks the process shutting down, so traffic moves elsewhere
// while it drains; it never becomes ready again.
func (p *Probe) Stopping() { p.set(stopping) }

// StopWhenDone marks the probe stopping once ctx ends (the process got
// SIGTERM).
func (p *Probe) StopWhenDone(ctx context.Context) {
	if p != nil {
		context.AfterFunc(ctx, p.Stopping)
	}
}

func (p *Probe) set(s int32) {
	if p == nil {
		return
	}
	for {
		old := p.state.Load()
		if old == stopping || p.state.CompareAndSwap(old, s) {
			return
		}
	}
}

// Status is the probe's state.
func (p *Probe) Status() string {
	if p == nil {
		return StatusStarting
	}
	return statuses[p.state.Load()]
}

// Register adds the two probes to mux.
func (p *Probe) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LivePath, func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, "alive")
	})
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		s := p.Status()
		code := http.StatusServiceUnavailable
		if s == StatusReady {
			code = http.StatusOK
		}
		reply(w, code, s)
	})
}

func reply(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

type ctxKey struct{}

// NewContext returns ctx carrying p, for the verb that runs a component
// to mark it ready once started.
func NewContext(ctx context.Context, p *Probe) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext is the probe ctx carries, or nil.
func FromContext(ctx context.Context) *Probe {
	p, _ := ctx.Value(ctxKey{}).(*Probe)
	return p
}
