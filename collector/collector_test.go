package collector_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

type rig struct {
	// native inserts over the native protocol instead of RowBinary over HTTP.
	native bool
	js     jetstream.JetStream
	ch     *chstore.Client
	cfg    collector.Config
	ids    event.IDSource
	seq    uint64
}

func newRig(t *testing.T, addr string) *rig {
	srv := natstest.Run(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(context.Background(), js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	ch := chtest.Open(t, addr)
	cfg := collector.Defaults()
	cfg.NATSURL = stream.URLs(srv.URL())
	cfg.BatchWait = 50 * time.Millisecond
	cfg.RetryDelay = 100 * time.Millisecond
	return &rig{js: js, ch: ch, cfg: cfg}
}

func (r *rig) publish(t *testing.T, tenant string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r.seq++
		e := &event.Event{V: event.Version, ID: r.ids.New(time.Now()), Kind: event.KindDecision, Time: time.Now(),
			Tenant: tenant, Instance: "enf-test", Seq: r.seq, RequestID: fmt.Sprint(r.seq),
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
		data, _ := event.Encode(e)
		subj, _ := subject.For(tenant, string(e.Kind))
		if _, err := r.js.Publish(context.Background(), subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
}

// publishBundle publishes one message holding an event of each tenant
// given, in order, on the subject of the first.
func (r *rig) publishBundle(t *testing.T, tenants ...string) {
	t.Helper()
	var body []byte
	var first *event.Event
	for _, tenant := range tenants {
		r.seq++
		e := &event.Event{V: event.Version, ID: r.ids.New(time.Now()), Kind: event.KindDecision, Time: time.Now(),
			Tenant: tenant, Instance: "enf-test", Seq: r.seq, RequestID: fmt.Sprint(r.seq),
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
		if first == nil {
			first = e
		}
		body, _ = event.AppendMessage(body, e)
	}
	subj, _ := subject.For(first.Tenant, string(first.Kind))
	if _, err := r.js.Publish(context.Background(), subj, body, jetstream.WithMsgID(first.ID)); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) start(t *testing.T, addr string) context.CancelFunc {
	t.Helper()
	cfg := r.cfg
	cfg.ClickHouse.Addr = chstore.AddrList(addr)
	cfg.ClickHouse.Database = r.ch.Database()
	if !r.native {
		cfg.ClickHouse.HTTPAddr = chstore.AddrList(r.ch.HTTPAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := collector.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	stop := func() { cancel(); <-done; c.Close() }
	t.Cleanup(stop)
	return stop
}

func count(t *testing.T, ch *chstore.Client, q string) int {
	t.Helper()
	rows, err := ch.Query(context.Background(), q)
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(rows[0][0])
	return n
}

// waitFor polls until the query returns want, or fails after a deadline.
func waitFor(t *testing.T, ch *chstore.Client, q string, want int) {
	t.Helper()
	poll.Until(t, 30*time.Second, func() error {
		if got := count(t, ch, q); got != want {
			return fmt.Errorf("%s = %d, want %d", q, got, want)
		}
		return nil
	})
}

func TestCollectsExactlyOnceAndDeadLettersPoison(t *testing.T) {
	for _, insert := range []string{"rowbinary", "native"} {
		t.Run(insert, func(t *testing.T) { collectsExactlyOnce(t, insert == "native") })
	}
}

func collectsExactlyOnce(t *testing.T, native bool) {
	addr, _ := chtest.Server(t)
	r := newRig(t, addr)
	r.native = native
	if !native && r.ch.HTTPAddr() == "" {
		t.Fatal("the RowBinary insert needs the server's HTTP address (RAMPART_CLICKHOUSE_HTTP_ADDR with RAMPART_CLICKHOUSE_ADDR)")
	}
	db := r.ch.Database()

	r.publish(t, "acme", 120)
	// Poison: not an event, and an event whose tenant disagrees with its subject.
	if _, err := r.js.Publish(context.Background(), "rampart.v1.acme.decision", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	spoof, _ := event.Encode(&event.Event{V: 1, ID: "X", Kind: event.KindDecision, Time: time.Now(), Tenant: "globex",
		Instance: "i", Seq: 1, Decision: &event.Decision{Effect: event.EffectAllow}})
	if _, err := r.js.Publish(context.Background(), "rampart.v1.acme.decision", spoof); err != nil {
		t.Fatal(err)
	}
	r.publish(t, "globex", 30)
	r.publishBundle(t, "acme", "acme", "acme")
	// A bundle smuggling another tenant's event is refused whole.
	r.publishBundle(t, "acme", "globex")

	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	stop := r.start(t, addr)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events", 153)
	stop()

	// A second collector on the same durable consumer finds nothing to redo.
	r.publish(t, "acme", 10)
	r.start(t, addr)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events", 163)
	if n := count(t, r.ch, "SELECT count() FROM "+db+".events_raw"); n != 163 {
		t.Fatalf("events_raw holds %d rows, want 163 (no duplicates)", n)
	}
	if n := count(t, r.ch, "SELECT count() FROM "+db+".events WHERE tenant = 'globex'"); n != 30 {
		t.Fatalf("%d globex events stored, want the 30 published on its own subject", n)
	}

	dlq, err := r.js.Stream(context.Background(), stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dlq.Info(context.Background())
	if info.State.Msgs != 3 {
		t.Fatalf("dead-letter stream holds %d messages, want 3", info.State.Msgs)
	}
	m, err := dlq.GetMsg(context.Background(), info.State.FirstSeq)
	if err != nil || m.Header.Get(collector.HeaderReason) == "" {
		t.Fatalf("dead letter without reason: %v %v", m, err)
	}

	// Rows are visible a moment before the insert returns and the
	// collector counts them.
	poll.Until(t, 30*time.Second, func() error {
		if got := eventCounts(t, reader); got["stored"] != 163 || got["dead_lettered"] != 4 || got["lag"] != 0 {
			return fmt.Errorf("metrics = %v, want 163 stored, 4 dead-lettered, lag 0", got)
		}
		return nil
	})
}

// eventCounts reads the collector's metrics: events by outcome, and lag.
func eventCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{"lag": -1}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					outcome, _ := dp.Attributes.Value("outcome")
					out[outcome.AsString()] += dp.Value
				}
			case metricdata.Gauge[int64]:
				if m.Name == "rampart.collector.lag" {
					for _, dp := range data.DataPoints {
						out["lag"] = dp.Value
					}
				}
			}
		}
	}
	return out
}

func TestClickHouseOutageLosesNothing(t *testing.T) {
	addr, srv := chtest.Server(t)
	if srv == nil {
		t.Fatal("this fault test needs a private server; unset RAMPART_CLICKHOUSE_ADDR")
	}
	r := newRig(t, addr)
	db := r.ch.Database()
	r.start(t, addr)

	r.publish(t, "acme", 50)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events", 50)

	srv.Stop()
	r.publish(t, "acme", 70) // arrives while ClickHouse is down
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events", 120)
	waitFor(t, r.ch, "SELECT uniqExact(event_id) FROM "+db+".events_raw", 120)
}
