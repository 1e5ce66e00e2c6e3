// Package chclustertest gives a test a real ClickHouse cluster in one call:
// a standalone ZooKeeper (zktest) and two clickhouse-server 18.16
// processes on loopback, one shard of two replicas, configured from
// exactly the files in deploy/cluster/clickhouse/config.d (rendered only
// for hosts, ports and names). Replicas can be killed and restarted on the
// same ports and data, as a crash, so the fault suites can use it where
// they use one chtest server.
package chclustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/deployfiles"
	"github.com/rampart-io/rampart/testkit/poll"
	"github.com/rampart-io/rampart/testkit/zktest"
)

// Name is the cluster's name in deploy/cluster/clickhouse's remote_servers.
const Name = "rampart"

// Replicas is how many replicas the one shard has.
const Replicas = 2

// configFiles are the shipped files every replica starts with.
var configFiles = []string{
	"deploy/cluster/clickhouse/config.d/rampart-cluster.xml",
	"deploy/cluster/clickhouse/config.d/rampart-replica.xml",
}

// Cluster is a running ZooKeeper and its ClickHouse replicas.
type Cluster struct {
	ZooKeeper *zktest.Server
	// Replicas are the servers, replica i named "replica<i+1>" in the
	// {replica} macro.
	Replicas []*chserver.Server
}

var counter atomic.Int64

// New starts a cluster for the test and stops it when the test ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	if _, err := chserver.Find(); err != nil {
		chtest.Unavailable(t, err.Error())
	}
	zk := zktest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, t.TempDir(), zk)
	if err != nil {
		chtest.Unavailable(t, err.Error())
	}
	t.Cleanup(c.Stop)
	return c
}

// Start launches the replicas under dir, coordinated by zk.
func Start(ctx context.Context, dir string, zk *zktest.Server) (*Cluster, error) {
	ports := make([]chserver.Ports, Replicas)
	for i := range ports {
		p, err := chserver.FreePorts()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	cluster := map[string]string{
		"CH_REPLICA_1_HOST": "127.0.0.1", "CH_REPLICA_1_PORT": fmt.Sprint(ports[0].TCP),
		"CH_REPLICA_2_HOST": "127.0.0.1", "CH_REPLICA_2_PORT": fmt.Sprint(ports[1].TCP),
	}
	// The file names an ensemble of three; the tests' one standalone
	// server stands for all three.
	for i := 1; i <= 3; i++ {
		cluster[fmt.Sprintf("ZK_%d_HOST", i)] = zk.Host
		cluster[fmt.Sprintf("ZK_%d_PORT", i)] = fmt.Sprint(zk.Port)
	}
	c := &Cluster{ZooKeeper: zk}
	for i, p := range ports {
		files := map[string][]byte{}
		for _, path := range configFiles {
			vars := cluster
			if filepath.Base(path) == "rampart-replica.xml" {
				vars = map[string]string{
					"CH_SHARD": "1", "CH_REPLICA": fmt.Sprintf("replica%d", i+1),
					"CH_HOST": "127.0.0.1", "CH_INTERSERVER_PORT": fmt.Sprint(p.Interserver),
				}
			}
			body, err := deployfiles.Render(path, vars)
			if err != nil {
				c.Stop()
				return nil, err
			}
			files[filepath.Base(path)] = body
		}
		rdir := filepath.Join(dir, fmt.Sprintf("replica%d", i+1))
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		srv, err := chserver.StartOn(ctx, rdir, p, files)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("chclustertest: replica%d: %w", i+1, err)
		}
		c.Replicas = append(c.Replicas, srv)
	}
	for i := range c.Replicas {
		if err := c.waitZooKeeper(ctx, i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// waitZooKeeper waits until replica i has its ZooKeeper session: a
// server accepts connections before, and DDL sent to it then can fail.
// On two loaded cores a replica has taken over 30 s to answer at all.
func (c *Cluster) waitZooKeeper(ctx context.Context, i int) error {
	cfg := chstore.Defaults()
	cfg.Addr = chstore.AddrList(c.Replicas[i].Addr)
	cfg.Database = "system"
	return poll.Wait(90*time.Second, func() error {
		cl, err := chstore.Open(ctx, cfg)
		if err != nil {
			return fmt.Errorf("chclustertest: replica%d: %w", i+1, err)
		}
		defer cl.Close()
		if _, err := cl.Query(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/clickhouse'"); err != nil {
			return fmt.Errorf("chclustertest: replica%d has no ZooKeeper session: %w", i+1, err)
		}
		return nil
	})
}

// Stop kills every replica (ZooKeeper is the caller's).
func (c *Cluster) Stop() {
	for _, r := range c.Replicas {
		r.Stop()
	}
}

// Kill crashes replica i (SIGKILL).
func (c *Cluster) Kill(i int) { c.Replicas[i].Stop() }

// Restart starts replica i again on its ports and data.
func (c *Cluster) Restart(ctx context.Context, i int) error { return c.Replicas[i].Restart(ctx) }

// Config is how a component reaches database db on the cluster: through
// replica i, or the others in turn while it is down.
func (c *Cluster) Config(i int, db string) chstore.Config {
	cfg := chstore.Defaults()
	cfg.Addr, cfg.HTTPAddr = chstore.AddrList(c.Addrs(i)), chstore.AddrList(c.HTTPAddrs(i))
	cfg.Cluster = Name
	cfg.Database = db
	return cfg
}

// Addrs is every replica's native address, replica i first, as
// chstore.Config.Addr takes them.
func (c *Cluster) Addrs(i int) string {
	addrs := []string{c.Replicas[i].Addr}
	for j, r := range c.Replicas {
		if j != i {
			addrs = append(addrs, r.Addr)
		}
	}
	return strings.Join(addrs, ",")
}

// HTTPAddrs is every replica's HTTP address, replica i first, as
// chstore.Config.HTTPAddr takes them.
func (c *Cluster) HTTPAddrs(i int) string {
	addrs := []string{c.Replicas[i].HTTPAddr}
	for j, r := range c.Replicas {
		if j != i {
			addrs = append(addrs, r.HTTPAddr)
		}
	}
	return strings.Join(addrs, ",")
}

// NewDatabase names a database no other test uses.
func NewDatabase() string {
	return fmt.Sprintf("rampart_c%d_%d", os.Getpid(), counter.Add(1))
}

// Open migrates a fresh database through replica 0 and returns a client on
// it for each replica, in replica order, each reaching only its own
// replica (no fallbacks), so a test sees what each one holds.
func (c *Cluster) Open(t testing.TB) []*chstore.Client {
	t.Helper()
	db := NewDatabase()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := make([]*chstore.Client, len(c.Replicas))
	for i := range c.Replicas {
		cfg := c.Config(i, db)
		cfg.Addr, cfg.HTTPAddr = chstore.AddrList(c.Replicas[i].Addr), chstore.AddrList(c.Replicas[i].HTTPAddr)
		cl, err := chstore.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("chclustertest: replica%d: %v", i+1, err)
		}
		t.Cleanup(func() { cl.Close() })
		out[i] = cl
	}
	if _, err := out[0].Migrate(ctx); err != nil {
		t.Fatalf("chclustertest: migrate: %v\n%s", err, c.Logs())
	}
	return out
}

// WaitEvents polls until the events view of every client's replica holds
// want events, each once: count() and uniqExact(event_id) both want.
func WaitEvents(t testing.TB, replicas []*chstore.Client, want int) {
	t.Helper()
	for i, c := range replicas {
		poll.Until(t, 2*time.Minute, func() error {
			rows, err := c.Query(context.Background(), "SELECT count(), uniqExact(event_id) FROM "+c.Database()+".events")
			if err != nil {
				return fmt.Errorf("replica%d: %w", i+1, err)
			}
			if rows[0][0] != fmt.Sprint(want) || rows[0][1] != fmt.Sprint(want) {
				return fmt.Errorf("replica%d: events holds %s rows of %s ids, want %d of each", i+1, rows[0][0], rows[0][1], want)
			}
			return nil
		})
	}
}

// Logs is the end of each replica's error log, for a failing test to show.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for i, r := range c.Replicas {
		body, _ := os.ReadFile(filepath.Join(r.Dir(), "stderr.log"))
		if len(body) > 4096 {
			body = body[len(body)-4096:]
		}
		fmt.Fprintf(&b, "--- replica%d %s\n%s\n", i+1, filepath.Join(r.Dir(), "stderr.log"), body)
	}
	return b.String()
}
