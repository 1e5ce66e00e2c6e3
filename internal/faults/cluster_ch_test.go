package faults

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chclustertest"
	"github.com/rampart-io/rampart/testkit/natscluster"
	"github.com/rampart-io/rampart/testkit/poll"
)

// newCHClusterRig is a rig on the three-node NATS cluster whose record is
// the replicated ClickHouse pair instead of one server: r.ch is replica
// 0's own client, replicas every replica's.
func newCHClusterRig(t *testing.T) (*rig, *chclustertest.Cluster, []*chstore.Client) {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), cluster: natscluster.Run(t), backend: &toolserver.Server{}}
	cl := chclustertest.New(t)
	replicas := cl.Open(t)
	r.ch = replicas[0]
	r.setUpEdges()
	return r, cl, replicas
}

// startReplicaCollector runs a collector from deploy/cluster/collector.yaml
// in this process, inserting over HTTP through replica i first and the
// other replica while it is down.
func (r *rig) startReplicaCollector(cl *chclustertest.Cluster, i int) {
	r.t.Helper()
	r.startCollectorWith(cl.Config(i, r.ch.Database()))
}

// startCollectorWith runs a collector from deploy/cluster/collector.yaml,
// its ClickHouse section ch.
func (r *rig) startCollectorWith(ch chstore.Config) {
	r.t.Helper()
	cfg := collector.Defaults()
	if err := configfile.Load(filepath.Join(deployCluster, "collector.yaml"), &cfg); err != nil {
		r.t.Fatal(err)
	}
	cfg.NATSURL = stream.URLs(r.natsURL())
	cfg.ClickHouse = ch
	cfg.BatchWait, cfg.RetryDelay = 100*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	c, err := collector.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done; c.Close() })
}

// One ClickHouse replica killed under steady load through two enforcers,
// with two collectors sharing the durable consumer, both inserting over
// HTTP through the replica killed: the survivor takes every insert
// meanwhile (it holds more decisions before the killed one is back), and once
// the killed one is back both replicas hold every decision once and
// verify clean. 10 s down in make test, 30 s under make soak.
func TestClusterClickHouseReplicaKilled(t *testing.T) {
	r, cl, replicas := newCHClusterRig(t)
	f := &fleet{r: r}
	for _, instance := range []string{"enf-cluster-1", "enf-cluster-2"} {
		f.enforcers = append(f.enforcers, r.startClusterEnforcer(instance))
	}
	for range 2 {
		r.startReplicaCollector(cl, 0)
	}
	decisions := func() int {
		rows, err := replicas[1].Query(context.Background(), "SELECT count() FROM "+r.ch.Database()+".events_raw WHERE kind = 'decision'")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(rows[0][0])
		return n
	}
	results := f.steady(3*time.Second, 3*time.Second, func() {
		cl.Kill(0)
		down, before := time.Now(), decisions()
		poll.Until(t, outage(), func() error {
			if n := decisions(); n < before+300 {
				return fmt.Errorf("replica2 holds %d decisions, %d at the outage: the collectors are not inserting through it", n, before)
			}
			return nil
		})
		time.Sleep(outage() - time.Since(down)) // the rest of the outage itself
		if err := cl.Restart(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	})
	r.waitConsumerIdle(collector.Defaults().Consumer, 120*time.Second)
	for i, c := range replicas {
		r.ch = c
		expect(t, "ClickHouse replica killed, read on replica"+string(rune('1'+i)), r.reconcile(results), false)
		r.verifyClean()
	}
}
