package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// BenchmarkSpoolDrain measures how fast a spool filled during a NATS outage
// drains into JetStream once NATS is back (events/s), and how fast requests
// were spooled meanwhile (spool-events/s, 32 concurrent requests).
// go test -run '^$' -bench SpoolDrain -benchtime 3x ./audit/
func BenchmarkSpoolDrain(b *testing.B) {
	const events = 20000
	var spooled, drained time.Duration
	for range b.N {
		srv := natstest.Run(b)
		ctx := context.Background()
		p, err := audit.Connect(ctx, "enf-bench", audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: time.Second, OnUnavailable: audit.Spool,
			Spool: spool.Config{Dir: b.TempDir()}, Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := w; i < events; i += 32 {
					if err := p.Publish(ctx, request("acme", "r")); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		spooled += time.Since(start)
		srv.Restart()
		start = time.Now()
		deadline := start.Add(2 * time.Minute)
		for p.SpoolBytes() > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("spool not drained: %d bytes left", p.SpoolBytes())
			}
			time.Sleep(5 * time.Millisecond)
		}
		drained += time.Since(start)
		p.Close()
	}
	b.ReportMetric(float64(events*b.N)/drained.Seconds(), "drain-events/s")
	b.ReportMetric(float64(events*b.N)/spooled.Seconds(), "spool-events/s")
}
