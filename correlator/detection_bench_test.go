package correlator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// load publishes n tool-call decision events asynchronously at about rate
// per second (0: as fast as JetStream takes them), over 8 tenants and 50
// agents, each acting for one of 13 users; every 3rd is a denial, so the
// pack's denial rules fire every few hundred events.
func load(b *testing.B, js jetstream.JetStream, n, rate int) {
	b.Helper()
	var ids event.IDSource
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		now := time.Now()
		tenant := fmt.Sprintf("t%d", i%8)
		effect, tool := event.EffectAllow, "search"
		if i%3 == 0 {
			effect, tool = event.EffectDeny, fmt.Sprintf("admin_%d", i%7)
		}
		e := &event.Event{V: event.Version, ID: ids.New(now), Kind: event.KindDecision, Time: now, Tenant: tenant,
			Instance: "enf", Seq: uint64(i + 1), RequestID: fmt.Sprint(i),
			Identity: &event.Identity{Subject: fmt.Sprintf("user:%d", i%50%13), SessionID: fmt.Sprintf("s%d", i/800),
				Chain: []event.Actor{{Subject: fmt.Sprintf("agent:%d", i%50)}}},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: tool},
			Decision: &event.Decision{Effect: effect, RuleID: "r"}}
		data, _ := event.Encode(e)
		subj, _ := subject.For(tenant, string(event.KindDecision))
		if _, err := js.PublishAsync(subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishes not acknowledged")
	}
}

func (r *rig) waitConsumed(b *testing.B, consumer string, total uint64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := r.js.Consumer(context.Background(), stream.Events, consumer)
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.AckFloor.Stream >= total {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("consumer never caught up")
}

// BenchmarkCorrelatorThroughput: b.N events already in the stream, then one
// correlator consumes them; the time is until the measured consumer has
// acknowledged them all. Reports events/s, each a ratio to the others of
// the same run:
//   - sessions: detection off; the sessions consumer, into ClickHouse.
//   - detect=empty: the detection consumer with an engine of no rules:
//     the pipeline (fetch, decode, partition, ack) without rules.
//   - detect=shipped: the detection consumer with the whole shipped pack.
func BenchmarkCorrelatorThroughput(b *testing.B) {
	empty, err := detect.Merge()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"sessions", "detect=empty", "detect=shipped"} {
		b.Run(mode, func(b *testing.B) {
			r := newRig(b)
			load(b, r.js, b.N, 0)
			b.ResetTimer()
			start := time.Now()
			switch mode {
			case "sessions":
				r.startWith(func(c *correlator.Config) { c.Detect.Shipped = false })
				r.waitConsumed(b, "correlator", uint64(b.N))
			case "detect=empty":
				r.startWith(func(*correlator.Config) {}, correlator.WithDetector(detect.NewEngine(empty, detect.Options{})))
				r.waitConsumed(b, "correlator-detect", uint64(b.N))
			case "detect=shipped":
				r.startWith(func(*correlator.Config) {})
				r.waitConsumed(b, "correlator-detect", uint64(b.N))
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkAlertLatency: b.N events published at a fixed rate while one
// correlator runs the whole shipped pack; the latency of an alert is from
// the publish of the event that completed it (the alert's last evidence
// time) to JetStream's timestamp of the stored alert.
func BenchmarkAlertLatency(b *testing.B) {
	for _, rate := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			r := newRig(b)
			r.startWith(func(*correlator.Config) {}) // the shipped pack
			b.ResetTimer()
			load(b, r.js, b.N, rate)
			r.waitConsumed(b, "correlator-detect", uint64(b.N))
			b.StopTimer()
			lat := r.alertLatencies(b)
			if len(lat) == 0 {
				if b.N >= 1000 { // smaller runs (the first, b.N = 1) complete no window
					b.Fatal("no alerts")
				}
				return
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat)), "alerts")
		})
	}
}

func (r *rig) alertLatencies(b *testing.B) []time.Duration {
	ctx := context.Background()
	s, _ := r.js.Stream(ctx, stream.Events)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject.Prefix + "*.alert"}})
	if err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out
		}
		md, _ := m.Metadata()
		evs, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, md.Timestamp.Sub(evs[0].Alert.Last))
	}
}
