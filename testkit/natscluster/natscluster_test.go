package natscluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natscluster"
	"github.com/rampart-io/rampart/testkit/poll"
)

// The cluster from deploy/cluster/nats holds a three-replica stream through
// the loss of its leader: what was acknowledged before the kill is there
// after it, under a new leader, and the killed node catches up on restart.
func TestLeaderKilledAcknowledgedMessagesSurvive(t *testing.T) {
	c := natscluster.Run(t)
	js := c.JetStream()
	ctx := context.Background()
	cfg := stream.Defaults()
	cfg.Replicas = natscluster.Size
	if _, err := stream.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			err := poll.Wait(30*time.Second, func() error {
				_, err := js.Publish(ctx, "rampart.v1.acme.request", []byte("{}"), jetstream.WithMsgID(fmt.Sprint("m-", i)))
				return err
			})
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(0, 100)
	leader := c.WaitStreamLeader(js, stream.Events)
	leader.Kill()
	publish(100, 200) // under the new leader, the old one down
	after := c.WaitStreamLeaderOf(js, stream.Events, natscluster.Size-2)
	if after == leader {
		t.Fatalf("stream still led by the killed %s", leader.Name)
	}
	publish(0, 200) // republished ids are duplicates, across the leader change
	leader.Restart()
	c.WaitHealthy()
	c.WaitStreamLeader(js, stream.Events)
	s, _ := js.Stream(ctx, stream.Events)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 {
		t.Fatalf("stream holds %d messages, want 200 (none lost, none doubled)", info.State.Msgs)
	}
	t.Logf("leader %s killed, %s took over, %s restarted and current", leader.Name, after.Name, leader.Name)
}

// A partitioned node is cut off from clients and peers alike, and rejoins
// when healed; step-down moves leadership without a crash.
func TestPartitionAndStepDown(t *testing.T) {
	c := natscluster.Run(t, natscluster.WithPartitionable())
	js := c.JetStream()
	nc := c.Connect()
	cfg := stream.Defaults()
	cfg.Replicas = natscluster.Size
	if _, err := stream.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	before := c.WaitStreamLeader(js, stream.Events)
	if after := c.StepDown(js, nc, stream.Events); after == before {
		t.Fatal("step-down kept the leader")
	}
	cut := c.Partition()
	poll.Until(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream.Events)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		for _, p := range info.Cluster.Replicas {
			if p.Name == cut.Name && !p.Current {
				return nil
			}
		}
		if info.Cluster.Leader == cut.Name {
			return fmt.Errorf("the partitioned %s still leads", cut.Name)
		}
		return fmt.Errorf("the partitioned %s still counted current", cut.Name)
	})
	c.Heal()
	c.WaitHealthy()
	c.WaitStreamLeader(js, stream.Events)
}
