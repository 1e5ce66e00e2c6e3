package kubernetes_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/loadtest/loadgen"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

var (
	rssRate     = flag.Float64("rss.rate", 500, "BenchmarkComponentRSS: allowed tools/call requests per second through the enforcer")
	rssDuration = flag.Duration("rss.duration", 30*time.Second, "BenchmarkComponentRSS: how long the load lasts")
)

// BenchmarkComponentRSS: the peak resident memory (VmHWM) of the chart's
// enforcer, collector and correlator, each its own process started as the
// chart renders it, after -rss.rate allowed calls a second for
// -rss.duration through the enforcer and until the collector and the
// correlator have acknowledged every event. The figures the chart's and
// the units' memory requests and limits come from (BENCHMARKS.md).
//
//	cd deploy && go test -run '^$' -bench ComponentRSS -benchtime 1x ./kubernetes/ -rss.rate 500 -rss.duration 30s
func BenchmarkComponentRSS(b *testing.B) {
	s := newStack(b)
	s.values["gateway"] = map[string]any{"enabled": false}
	r := render(b, s.values)
	procs := s.start(b, r)
	var enforcer string
	for _, p := range procs {
		if p.listen != "" {
			enforcer = "http://" + p.listen
		}
	}
	token := s.token(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	send := func(ctx context.Context) error {
		status, err := post(ctx, client, enforcer, token)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d", status)
		}
		return err
	}
	b.ResetTimer()
	for range b.N {
		res := loadgen.OpenLoop(context.Background(), send, *rssRate, *rssDuration, 512)
		if res.Errors > 0 {
			b.Fatalf("%d errors (first: %v) of %d", res.Errors, res.FirstErr, res.OK())
		}
		// Sends the enforcer was too far behind for (512 in flight): the
		// rate it took is calls/s.
		b.ReportMetric(float64(res.Dropped), "dropped")
		b.ReportMetric(res.Throughput(), "calls/s")
		b.ReportMetric(float64(res.Quantile(0.99).Microseconds())/1000, "p99-ms")
	}
	b.StopTimer()
	msgs := waitConsumed(b, s.nats.JetStream())
	b.ReportMetric(float64(msgs), "messages")
	for _, p := range procs {
		hwm, err := peakRSS(p.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(hwm)/(1<<20), p.name[len("rampart-"):]+"-MiB")
	}
}

// waitConsumed waits until every durable consumer of the events stream
// (the collector's and the correlator's) has acknowledged everything, and
// returns the number of messages in the stream (a message carries the
// events of the calls recorded together).
func waitConsumed(b *testing.B, js jetstream.JetStream) uint64 {
	ctx := context.Background()
	st, err := js.Stream(ctx, stream.Events)
	if err != nil {
		b.Fatal(err)
	}
	poll.Until(b, 10*time.Minute, func() error {
		var n int
		var errs []error
		for name := range st.ConsumerNames(ctx).Name() {
			c, err := st.Consumer(ctx, name)
			if err != nil {
				return err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			n++
			if info.NumPending > 0 || info.NumAckPending > 0 {
				errs = append(errs, fmt.Errorf("%s: %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending))
			}
		}
		if n < 2 {
			errs = append(errs, fmt.Errorf("%d consumers, want the collector's and the correlator's", n))
		}
		return errors.Join(errs...)
	})
	info, err := st.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}
