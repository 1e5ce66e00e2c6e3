// Package start opens a component, retrying while what it needs is
// briefly away: a component started while JetStream elects a leader, or
// has no quorum, or while ClickHouse restarts, would otherwise exit, and
// with it every consumer or listener it holds, until something outside
// restarts it.
package start

import (
	"context"
	"log/slog"
	"time"

	"github.com/rampart-io/rampart/schema/stream"
)

// Backoff between attempts: from the first retry to the longest wait.
const (
	first   = 200 * time.Millisecond
	longest = 5 * time.Second
)

// Retrying runs open until it succeeds, fails for good (an error
// stream.Transient does not count as passing) or ctx ends. Each failed
// attempt is logged as "start failed; retrying". Callers report readiness
// only after it returns, so a probe sees a component still starting as
// not ready.
func Retrying[T any](ctx context.Context, log *slog.Logger, what string, open func(context.Context) (T, error)) (T, error) {
	wait := first
	for {
		v, err := open(ctx)
		if err == nil || ctx.Err() != nil || !stream.Transient(err) {
			return v, err
		}
		log.Warn("start failed; retrying", "component", what, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait = min(2*wait, longest)
	}
}
