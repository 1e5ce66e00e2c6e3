package collector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chclustertest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// rawCounts polls until every replica's events_raw holds want rows.
func rawCounts(t *testing.T, replicas []*chstore.Client, want int) {
	t.Helper()
	poll.Until(t, 2*time.Minute, func() error {
		var got []int
		for _, c := range replicas {
			got = append(got, count(t, c, "SELECT count() FROM "+c.Database()+".events_raw"))
		}
		for _, n := range got {
			if n != want {
				return fmt.Errorf("events_raw holds %v rows on the replicas, want %d on each", got, want)
			}
		}
		return nil
	})
}

// What the collector inserts through one replica is on both, and a
// redelivery through the other still shows each event once.
func TestClusterStoresOnEveryReplicaOnce(t *testing.T) {
	cl := chclustertest.New(t)
	replicas := cl.Open(t)
	db := replicas[0].Database()
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
	cfg := collector.Defaults()
	cfg.NATSURL, cfg.BatchWait = stream.URLs(srv.URL()), 50*time.Millisecond
	cfg.ClickHouse = cl.Config(0, db)
	r := &rig{js: js, ch: replicas[0], cfg: cfg}

	stop := r.start(t, cl.Addrs(0))
	r.publish(t, "acme", 150)
	chclustertest.WaitEvents(t, replicas, 150)
	stop()

	// Merges would collapse copies in the background; stopped, the raw
	// counts below say what arrived.
	for _, c := range replicas {
		if err := c.Exec(context.Background(), "SYSTEM STOP MERGES "+db+".events_raw"); err != nil {
			t.Fatal(err)
		}
	}
	// A second consumer reads the whole stream again and inserts it
	// through replica 1, as a batch redelivered after a lost ack lands on
	// whichever replica the collector reaches. Its blocks are new
	// (collected_at differs), so replication's deduplication of identical
	// blocks does not catch them: the ReplacingMergeTree, read FINAL, does.
	// Within the second of the first insert, a batch cut the same way would
	// be that very block again, and deduplicated as one; a second later it
	// is not.
	stored := time.Now().Unix()
	poll.Until(t, 5*time.Second, func() error {
		if time.Now().Unix() == stored {
			return fmt.Errorf("still in second %d", stored)
		}
		return nil
	})
	r.cfg.Consumer = "collector-again"
	r.cfg.ClickHouse = cl.Config(1, db)
	r.start(t, cl.Addrs(1))
	rawCounts(t, replicas, 300)
	chclustertest.WaitEvents(t, replicas, 150)

	// The same block sent twice (a driver's retry) is stored once, on both:
	// that much replication deduplicates itself.
	rows, err := replicas[0].Query(context.Background(), "SELECT event_id FROM "+db+".events_raw LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	var block [][]any
	err = replicas[0].ReadEvents(context.Background(), "event_id = '"+rows[0][0]+"'", func(e *event.Event) error {
		block = append(block, ddl.Values(ddl.Events, &ddl.Row{Event: e, StreamSeq: 1, CollectedAt: time.Unix(1e9, 0)}))
		return nil
	})
	if err != nil || len(block) != 2 {
		t.Fatalf("read %d copies, %v", len(block), err)
	}
	for range 2 {
		if err := replicas[0].Insert(context.Background(), "events_raw", ddl.EventColumns, block[:1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := replicas[1].Exec(context.Background(), "SYSTEM SYNC REPLICA "+db+".events_raw"); err != nil {
		t.Fatal(err)
	}
	for i, c := range replicas {
		if n := count(t, c, "SELECT count() FROM "+db+".events_raw"); n != 301 {
			t.Errorf("replica%d: events_raw holds %d rows after the same block twice, want 301", i+1, n)
		}
	}
	chclustertest.WaitEvents(t, replicas, 150)
}
