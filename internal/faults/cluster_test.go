package faults

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/component/start"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natscluster"
	"github.com/rampart-io/rampart/testkit/poll"
)

// deployCluster is where the cluster's component files are: the suite
// starts exactly these, pointed at its rig by flags and overrides.
const deployCluster = "../../deploy/cluster"

// fleet is the clustered deployment under fault: two enforcers in this
// process, two collectors sharing the durable consumer and two
// partitioned correlators as `rampart` processes the suite can SIGKILL,
// all on the three-node cluster. ClickHouse is the rig's (one 18.16
// server, already migrated, so the file's cluster: runs no ON CLUSTER
// DDL): the collectors and correlators are handed only its addresses and
// database, so a replicated pair can take its place.
type fleet struct {
	r           *rig
	enforcers   []string
	collectors  []*process
	correlators []*process
	spawned     []*process // enforcers run as processes, when a case needs them
}

func newClusterRig(t testing.TB, opts ...natscluster.Option) *rig {
	t.Helper()
	rampartBinary(t) // built before any clock starts
	r := &rig{t: t, dir: t.TempDir(), cluster: natscluster.Run(t, opts...), backend: &toolserver.Server{}}
	r.setUp()
	return r
}

func (r *rig) startFleet() *fleet {
	r.t.Helper()
	f := &fleet{r: r}
	for _, instance := range []string{"enf-cluster-1", "enf-cluster-2"} {
		f.enforcers = append(f.enforcers, r.startClusterEnforcer(instance))
	}
	for i := range 2 {
		f.collectors = append(f.collectors, r.spawn(f.collectorArgs(i)...))
		f.correlators = append(f.correlators, r.spawn(f.correlatorArgs(i)...))
	}
	return f
}

// startClusterEnforcer runs an enforcer in this process from
// deploy/cluster/enforcer.yaml, its addresses, identity and paths the rig's.
func (r *rig) startClusterEnforcer(instance string) string {
	r.t.Helper()
	// As `rampart enforcer` does: a stream call timed out while the cluster
	// settles is retried, not the end of the case.
	cfg := r.clusterEnforcerConfig(instance)
	e, err := start.Retrying(context.Background(), slog.Default(), instance, func(ctx context.Context) (*enforcer.Enforcer, error) {
		return enforcer.New(ctx, cfg)
	})
	if err != nil {
		r.t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	r.t.Cleanup(func() { srv.Close(); e.Close() })
	return srv.URL
}

// spawnClusterEnforcer runs `rampart enforcer` on the configuration
// startClusterEnforcer uses, written to a file, listening on addr.
func (r *rig) spawnClusterEnforcer(instance, addr string) *process {
	r.t.Helper()
	c := r.clusterEnforcerConfig(instance)
	c.Listen = addr
	return r.spawn("enforcer", "-config", r.enforcerFile(instance+".yaml", c))
}

// clusterEnforcerConfig is deploy/cluster/enforcer.yaml with the rig's
// addresses, identity and paths.
func (r *rig) clusterEnforcerConfig(instance string) enforcer.Config {
	r.t.Helper()
	c, err := enforcer.LoadConfig(filepath.Join(deployCluster, "enforcer.yaml"))
	if err != nil {
		r.t.Fatal(err)
	}
	c.Upstream, c.Instance, c.PolicyFile = r.backURL, instance, r.policy
	c.Identity.Issuer, c.Identity.Audience, c.Identity.JWKSFile, c.Identity.JWKSURL = r.issuer.URL, r.issuer.Audience, r.jwks, ""
	c.Identity.JWKSRefreshInterval, c.Identity.JWKSRefetchInterval = 0, 0 // set for jwks_url by the file's defaults
	c.NATS.URL = stream.URLs(r.natsURL())
	c.NATS.Spool.Dir = filepath.Join(r.dir, "spool-"+instance)
	c.SetDefaults()
	if c.NATS.Stream.Replicas != natscluster.Size || c.NATS.OnUnavailable != "spool" {
		r.t.Fatalf("deploy/cluster/enforcer.yaml: replicas %d, on_unavailable %s", c.NATS.Stream.Replicas, c.NATS.OnUnavailable)
	}
	return c
}

func (f *fleet) collectorArgs(int) []string {
	return []string{"collector", "-config", filepath.Join(deployCluster, "collector.yaml"),
		"-nats", f.r.natsURL(), "-clickhouse", f.r.chAddr, "-clickhouse-http", f.r.chHTTP, "-database", f.r.ch.Database()}
}

func (f *fleet) correlatorFile(i int) string {
	return filepath.Join(deployCluster, []string{"correlator-1.yaml", "correlator-2.yaml"}[i])
}

func (f *fleet) correlatorArgs(i int) []string {
	return []string{"correlator", "-config", f.correlatorFile(i),
		"-nats", f.r.natsURL(), "-clickhouse", f.r.chAddr, "-database", f.r.ch.Database()}
}

// consumers are every durable consumer of the fleet.
func (f *fleet) consumers() []string {
	names := []string{collector.Defaults().Consumer}
	for i := range f.correlators {
		cfg := correlator.Defaults()
		if err := configfile.Load(f.correlatorFile(i), &cfg); err != nil {
			f.r.t.Fatal(err)
		}
		names = append(names, cfg.Consumers()...)
	}
	return names
}

// steady drives both enforcers, one tenant each (so both correlator
// partitions judge), for before, then fault(), then after. Half of each
// tenant's calls are denied, so denial bursts raise alerts throughout.
func (f *fleet) steady(before, after time.Duration, fault func()) []result {
	stop := make(chan struct{})
	var collect []func() []result
	for i, url := range f.enforcers {
		tenant := []string{"acme", "globex"}[i]
		caller := workload.Caller{Tenant: tenant, Principal: "user:alice", Actors: []string{"agent:planner"}, Session: "s-" + tenant}
		collect = append(collect, f.r.loadAs(url, 50, stop, caller))
	}
	time.Sleep(before) // load duration, not a wait for an event
	fault()
	time.Sleep(after)
	close(stop)
	var out []result
	for _, c := range collect {
		out = append(out, c()...)
	}
	return out
}

// running fails the case if a component it did not kill has exited.
func (f *fleet) running(name string) {
	f.r.t.Helper()
	for _, p := range slices.Concat(f.collectors, f.correlators, f.spawned) {
		if why, ok := p.exited(); ok {
			f.r.t.Fatalf("%s: %s", name, why)
		}
	}
}

// settle waits until the cluster is whole and every consumer has caught
// up (a killed process's unacknowledged messages come back after the
// consumers' 30 s ack wait), then reconciles requests, alerts and chains.
func (f *fleet) settle(name string, results []result) {
	r := f.r
	r.t.Helper()
	r.cluster.WaitHealthy()
	f.running(name)
	tl := r.reconcile(results)
	for _, c := range f.consumers() {
		r.waitConsumerIdle(c, 120*time.Second)
	}
	expect(r.t, name, tl, false)
	if al := r.reconcileAlerts(); al.Expected == 0 || !al.OK() {
		r.t.Fatalf("%s: alerts do not reconcile: %s", name, al)
	}
	r.verifyClean()
}

func TestClusterStreamLeaderKilled(t *testing.T) {
	r := newClusterRig(t)
	f := r.startFleet()
	js := r.jetStream()
	var leader *natscluster.Node
	results := f.steady(3*time.Second, 3*time.Second, func() {
		leader = r.cluster.WaitStreamLeaderOf(js, stream.Events, 1)
		leader.Kill()
		time.Sleep(outage()) // the outage itself
		leader.Restart()
	})
	after := r.cluster.WaitStreamLeader(js, stream.Events)
	t.Logf("killed stream leader %s for %v; %s leads now", leader.Name, outage(), after.Name)
	f.settle("stream leader killed", results)
}

// Collectors, correlators and an enforcer started while JetStream has no
// quorum (two of the three nodes down, as in a rolling restart gone wrong)
// keep trying and work once the nodes are back, rather than exit on the
// first timed-out stream, consumer or bucket call and leave their
// consumers, or the gateway's traffic, to nobody. The enforcer serves
// nothing until it has started: nothing unrecorded can pass meanwhile.
func TestClusterComponentsStartWithoutQuorum(t *testing.T) {
	r := newClusterRig(t)
	r.cluster.WaitHealthy()
	down := r.cluster.Nodes[:natscluster.Size-1]
	for _, n := range down {
		n.Kill()
	}
	f := &fleet{r: r}
	for i := range 2 {
		f.collectors = append(f.collectors, r.spawn(f.collectorArgs(i)...))
		f.correlators = append(f.correlators, r.spawn(f.correlatorArgs(i)...))
	}
	addr := freeAddr(t)
	f.spawned = append(f.spawned, r.spawnClusterEnforcer("enf-cluster-1", addr))
	// Until each kind has failed a start and said it retries, or a
	// process has given up.
	poll.Until(t, 90*time.Second, func() error {
		f.running("started without quorum")
		for _, kind := range []string{"collector", "correlator", "enforcer"} {
			b, _ := os.ReadFile(filepath.Join(r.dir, kind+".log"))
			if !strings.Contains(string(b), "start failed; retrying") {
				return fmt.Errorf("no %s has retried a start yet", kind)
			}
		}
		return nil
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the enforcer listens before it has started")
	}
	for _, n := range down {
		n.Restart()
	}
	r.cluster.WaitHealthy()
	// A start attempt under way when the quorum came back runs out its
	// 30 s stream timeout before the next one succeeds.
	poll.Until(t, 60*time.Second, func() error {
		f.running("quorum back")
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("the enforcer is not listening yet: %w", err)
		}
		return c.Close()
	})
	f.enforcers = []string{"http://" + addr, r.startClusterEnforcer("enf-cluster-2")}
	results := f.steady(3*time.Second, 0, func() {})
	f.settle("started without quorum", results)
}

// One node cut off from the others and from the clients (packets dropped,
// no reset) for the outage, then healed: clients on it move to the
// majority, which goes on electing leaders and storing events.
func TestClusterNodePartitioned(t *testing.T) {
	r := newClusterRig(t, natscluster.WithPartitionable())
	f := r.startFleet()
	js := r.jetStream()
	var cut *natscluster.Node
	results := f.steady(3*time.Second, 3*time.Second, func() {
		leader := r.cluster.WaitStreamLeaderOf(js, stream.Events, 1)
		cut = r.cluster.Partition()
		t.Logf("partitioned %s (stream leader %s) for %v", cut.Name, leader.Name, outage())
		time.Sleep(outage()) // the outage itself
		r.cluster.Heal()
	})
	f.settle("node partitioned", results)
}

// One collector and one correlator SIGKILLed under load and started again
// after the outage: the other collector goes on storing meanwhile, and the
// killed correlator's partition is caught up by its successor, its
// unacknowledged messages redelivered after the ack wait.
func TestClusterConsumersKilled(t *testing.T) {
	r := newClusterRig(t)
	f := r.startFleet()
	results := f.steady(3*time.Second, 3*time.Second, func() {
		f.collectors[0].kill()
		f.correlators[0].kill()
		time.Sleep(outage()) // the outage itself
		f.collectors[0] = r.spawn(f.collectorArgs(0)...)
		f.correlators[0] = r.spawn(f.correlatorArgs(0)...)
	})
	f.settle("collector and correlator killed", results)
}
