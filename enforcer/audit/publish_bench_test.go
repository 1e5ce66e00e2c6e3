package audit_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// BenchmarkPublishConcurrent measures the record's throughput with many
// callers at once, as under load: each op is one call's request and
// decision, acknowledged by JetStream (embedded, file store). Its
// calls/msg metric is how many calls one JetStream message carried.
// go test -run '^$' -bench PublishConcurrent -cpu 2 ./audit/
func BenchmarkPublishConcurrent(b *testing.B) {
	srv := natstest.Run(b)
	p, err := audit.Connect(context.Background(), "enf-bench", audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 5 * time.Second,
		Checkpoint: audit.CheckpointConfig{Every: 1 << 30, Interval: time.Hour, Idle: time.Hour}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	before := storedMessages(b, srv.URL())
	var calls atomic.Int64
	b.SetParallelism(16) // 32 callers on 2 CPUs, as rampart-load's saturation runs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			dec := &event.Event{Kind: event.KindDecision, Tenant: "acme", RequestID: "r", Decision: &event.Decision{Effect: event.EffectAllow}}
			if err := p.Publish(context.Background(), request("acme", "r"), dec); err != nil {
				b.Error(err)
				return
			}
			calls.Add(1)
		}
	})
	b.StopTimer()
	if msgs := storedMessages(b, srv.URL()) - before; msgs > 0 {
		b.ReportMetric(float64(calls.Load())/float64(msgs), "calls/msg")
	}
}

// storedMessages is the number of messages the events stream holds.
func storedMessages(b *testing.B, url string) int64 {
	b.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), stream.Events)
	if err != nil {
		b.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return int64(info.State.Msgs)
}
