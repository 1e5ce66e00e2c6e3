package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/rampart-io/rampart/schema/stream"
)

// Backoff between start attempts: from the first retry to the longest wait.
const (
	startRetryFirst = 200 * time.Millisecond
	startRetryMax   = 5 * time.Second
)

// startRetrying runs open until it succeeds, fails for good or ctx ends.
// A component started while JetStream elects a leader or ClickHouse
// restarts would otherwise exit, and with it every consumer it holds,
// until something outside restarts it. Readiness is reported only after
// open succeeds, so a probe sees a component still starting as not ready.
func startRetrying[T any](ctx context.Context, what string, open func(context.Context) (T, error)) (T, error) {
	wait := startRetryFirst
	for {
		v, err := open(ctx)
		if err == nil || ctx.Err() != nil || !stream.Transient(err) {
			return v, err
		}
		slog.Warn("start failed; retrying", "component", what, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait = min(2*wait, startRetryMax)
	}
}
