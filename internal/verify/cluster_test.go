package verify_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chclustertest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// A replica killed (SIGKILL) while the collector inserts through it: the
// collector goes on through the other, which answers throughout; once the
// killed one is back, both hold every event once, and `rampart verify`
// finds the record intact on each. The outage lasts a few seconds, 30 s
// under RAMPART_SOAK=1. Both insert paths fail over: the native protocol
// and RowBinary over HTTP, each given the replica list.
func TestClusterReplicaOutageLosesNothing(t *testing.T) {
	for _, path := range []string{"native", "http"} {
		t.Run(path, func(t *testing.T) { replicaOutage(t, path == "http") })
	}
}

func replicaOutage(t *testing.T, overHTTP bool) {
	outage := 3 * time.Second
	if os.Getenv("RAMPART_SOAK") != "" {
		outage = 30 * time.Second
	}
	ctx := context.Background()
	srv := natstest.Run(t)
	cl := chclustertest.New(t)
	replicas := cl.Open(t)
	db := replicas[0].Database()
	key, trusted := keyPair(t)

	cfg := collector.Defaults()
	cfg.NATSURL, cfg.BatchWait, cfg.RetryDelay = stream.URLs(srv.URL()), 50*time.Millisecond, 100*time.Millisecond
	cfg.ClickHouse = cl.Config(0, db) // replica 1 its fallback
	if !overHTTP {
		cfg.ClickHouse.HTTPAddr = ""
	}
	cctx, cancel := context.WithCancel(ctx)
	col, err := collector.New(cctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	collected := make(chan struct{})
	go func() { defer close(collected); _ = col.Run(cctx) }()
	defer func() { cancel(); <-collected; col.Close() }()

	// An enforcer publishing throughout, a signed checkpoint every 50 events.
	p, err := audit.Connect(ctx, "enf-a", audit.Config{URL: stream.URLs(srv.URL()),
		Checkpoint: audit.CheckpointConfig{KeyFile: key, Every: 50, Interval: time.Hour, Idle: time.Hour}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64
	stopPublishing, published1 := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopPublishing:
				published1 <- nil
				return
			case <-tick.C:
			}
			e := &event.Event{Kind: event.KindDecision, Tenant: "acme", RequestID: strconv.Itoa(i),
				Request:  &event.Request{Method: "POST", Path: "/mcp", Tool: "search"},
				Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
			if err := p.Publish(ctx, e); err != nil {
				published1 <- err
				return
			}
			published.Add(1)
		}
	}()

	stored := func(c int) int {
		rows, err := replicas[c].Query(ctx, "SELECT count() FROM "+db+".events_raw")
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(rows[0][0])
		return n
	}
	poll.Until(t, time.Minute, func() error {
		if n := stored(1); n < 200 {
			return fmt.Errorf("replica2 holds %d events, want 200 before the outage", n)
		}
		return nil
	})

	cl.Kill(0)
	down := time.Now()
	before := stored(1)
	// The survivor takes the collector's inserts and answers meanwhile.
	poll.Until(t, time.Minute, func() error {
		if n := stored(1); n < before+300 {
			return fmt.Errorf("replica2 holds %d events, %d at the outage: the collector is not inserting through it", n, before)
		}
		return nil
	})
	if rest := outage - time.Since(down); rest > 0 {
		time.Sleep(rest) // the outage itself, not a wait for anything
	}
	during := stored(1) - before
	if err := cl.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	close(stopPublishing)
	if err := <-published1; err != nil {
		t.Fatal(err)
	}
	p.Close() // a final checkpoint

	// Every message in the stream (one event each), on both replicas, once.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	if want <= int(published.Load()) {
		t.Fatalf("the stream holds %d messages for %d events published and their checkpoints", want, published.Load())
	}
	chclustertest.WaitEvents(t, replicas, want)
	poll.Until(t, time.Minute, func() error {
		ci, err := js.Consumer(ctx, stream.Events, cfg.Consumer)
		if err != nil {
			return err
		}
		inf, err := ci.Info(ctx)
		if err != nil {
			return err
		}
		if inf.NumPending != 0 || inf.NumAckPending != 0 {
			return fmt.Errorf("the collector has %d messages pending and %d unacknowledged", inf.NumPending, inf.NumAckPending)
		}
		return nil
	})
	for i, c := range replicas {
		res, err := verify.Run(ctx, c, verify.Options{Keys: trusted, NATSURL: srv.URL()})
		if err != nil {
			t.Fatalf("replica%d: %v", i+1, err)
		}
		if len(res.Findings) != 0 || res.Chains != 1 || res.Events != want || res.Witnesses != res.Checkpoints || res.Checkpoints < 2 {
			t.Fatalf("replica%d: verify after the outage: %+v", i+1, res)
		}
	}
	t.Logf("%d events, %d stored through replica2 during an outage of %v", want, during, outage)
}
