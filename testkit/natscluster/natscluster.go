// Package natscluster starts a real three-node NATS JetStream cluster for
// tests, in one call, stopped with the test: three nats-server processes
// (built from the nats-server/v2 module the tests link, cached by its
// version) started from deploy/cluster/nats/node.conf, the file operators
// deploy, with only addresses and store directories set per test. Fault
// tests kill -9 and restart a node on the same ports and store, find and
// step down a stream's leader, and partition a node away: WithPartitionable
// runs the last node in a network namespace the test creates, joined to
// this one by a veth pair, so its link can be cut and healed.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

// Size is how many servers a cluster has.
const Size = 3

// Cluster is three running JetStream servers routed to one another.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	netns *netns // nil unless WithPartitionable
}

// Node is one nats-server process of the cluster.
type Node struct {
	// Name is the server's name, as the JetStream API reports leaders.
	Name      string
	ClientURL string
	host      string
	ports     [3]int // client, cluster, monitor
	env       []string
	netns     string // the namespace the node runs in, or ""
	log       string
	t         testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Option configures Run.
type Option func(*options)

type options struct{ partitionable bool }

// WithPartitionable runs the last node in a network namespace of its own,
// so Partition and Heal can cut it off from the other two and from every
// client. The other nodes then listen on the host end of the veth pair
// instead of 127.0.0.1; every address stays on this machine.
func WithPartitionable() Option { return func(o *options) { o.partitionable = true } }

// Run starts the cluster and waits until JetStream is ready on every node.
// Without the nats-server binary or the config file it fails the test.
func Run(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := Binary(t)
	conf := ConfigFile(t)
	c := &Cluster{t: t}
	hosts := [Size]string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}
	if o.partitionable {
		c.netns = newNetns(t)
		hosts = [Size]string{c.netns.hostIP, c.netns.hostIP, c.netns.nsIP}
	}
	dir := t.TempDir()
	for i := range Size {
		n := &Node{Name: fmt.Sprintf("nats-%d", i+1), host: hosts[i], t: t}
		if o.partitionable && i == Size-1 {
			n.netns = c.netns.name
			n.ports = [3]int{4222, 6222, 8222} // the namespace's own addresses, all free
		} else {
			for j := range n.ports {
				n.ports[j] = freePort(t, n.host)
			}
		}
		n.ClientURL = fmt.Sprintf("nats://%s:%d", n.host, n.ports[0])
		n.log = filepath.Join(dir, n.Name+".log")
		c.Nodes = append(c.Nodes, n)
	}
	var routes []string
	for _, n := range c.Nodes {
		routes = append(routes, fmt.Sprintf("nats-route://%s:%d", n.host, n.ports[1]))
	}
	for _, n := range c.Nodes {
		n.env = append(os.Environ(),
			"RAMPART_NATS_NAME="+n.Name,
			fmt.Sprintf("RAMPART_NATS_LISTEN=%s:%d", n.host, n.ports[0]),
			fmt.Sprintf("RAMPART_NATS_CLUSTER_LISTEN=%s:%d", n.host, n.ports[1]),
			fmt.Sprintf("RAMPART_NATS_MONITOR=%s:%d", n.host, n.ports[2]),
			"RAMPART_NATS_ROUTES=["+strings.Join(routes, ", ")+"]",
			"RAMPART_NATS_STORE="+filepath.Join(dir, n.Name),
		)
		n.start(bin, conf)
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Kill()
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("natscluster: %s log (last 4 KiB):\n%s", n.Name, tail(n.log, 4<<10))
			}
		}
	})
	c.WaitHealthy()
	return c
}

// URLs is every node's client URL, comma-separated: the seeds a component
// is configured with.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.ClientURL)
	}
	return strings.Join(urls, ",")
}

// Node is the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// WaitHealthy waits until every running node reports JetStream healthy
// (/healthz: its meta group current, its streams and consumers caught up).
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	poll.Until(c.t, 90*time.Second, func() error {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			if err := n.healthy(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Connect connects a client to the cluster (every seed) as the components
// connect, so it leaves a partitioned node as they do; closed with the test.
func (c *Cluster) Connect() *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs(), stream.ConnectOptions("natscluster")...)
	if err != nil {
		c.t.Fatalf("natscluster: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// JetStream is a JetStream client of the cluster, closed with the test.
func (c *Cluster) JetStream() jetstream.JetStream {
	c.t.Helper()
	js, err := jetstream.New(c.Connect())
	if err != nil {
		c.t.Fatalf("natscluster: jetstream: %v", err)
	}
	return js
}

// StreamLeader asks the JetStream API which node leads stream, and how
// many replicas are current with it.
func (c *Cluster) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (*Node, int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return nil, 0, fmt.Errorf("natscluster: stream %s has no leader", stream)
	}
	current := 0
	for _, p := range info.Cluster.Replicas {
		if p.Current {
			current++
		}
	}
	n := c.Node(info.Cluster.Leader)
	if n == nil {
		return nil, 0, fmt.Errorf("natscluster: stream %s is led by %q, not a node of this cluster", stream, info.Cluster.Leader)
	}
	return n, current, nil
}

// WaitStreamLeader waits until stream has a leader and every other replica
// is current with it, and returns the leader.
func (c *Cluster) WaitStreamLeader(js jetstream.JetStream, stream string) *Node {
	c.t.Helper()
	return c.WaitStreamLeaderOf(js, stream, Size-1)
}

// WaitStreamLeaderOf waits until stream has a leader with at least
// followers replicas current (one while a node is down), and returns it.
func (c *Cluster) WaitStreamLeaderOf(js jetstream.JetStream, stream string, followers int) *Node {
	c.t.Helper()
	var leader *Node
	poll.Until(c.t, 60*time.Second, func() (err error) {
		leader, err = c.currentLeader(js, stream, followers)
		return err
	})
	return leader
}

func (c *Cluster) currentLeader(js jetstream.JetStream, stream string, followers int) (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, current, err := c.StreamLeader(ctx, js, stream)
	if err != nil {
		return nil, err
	}
	if current < followers {
		return nil, fmt.Errorf("stream %s led by %s, %d of %d followers current", stream, n.Name, current, followers)
	}
	return n, nil
}

// StepDown asks stream's leader to hand leadership to another replica and
// waits until one has it: a leader change without a crash.
func (c *Cluster) StepDown(js jetstream.JetStream, nc *nats.Conn, stream string) *Node {
	c.t.Helper()
	before := c.WaitStreamLeader(js, stream)
	if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, 5*time.Second); err != nil {
		c.t.Fatalf("natscluster: step down %s: %v", stream, err)
	}
	var after *Node
	poll.Until(c.t, 60*time.Second, func() (err error) {
		if after, err = c.currentLeader(js, stream, Size-1); err == nil && after == before {
			err = fmt.Errorf("stream %s still led by %s", stream, before.Name)
		}
		return err
	})
	return after
}

// Partition cuts the namespaced node off: its end of the veth pair goes
// down, so packets to and from it are dropped without a reset, as on a
// real partition. Only with WithPartitionable.
func (c *Cluster) Partition() *Node {
	c.t.Helper()
	c.requireNetns()
	c.netns.link(c.t, "down")
	return c.Nodes[Size-1]
}

// Heal brings the partitioned node's link back.
func (c *Cluster) Heal() {
	c.t.Helper()
	c.requireNetns()
	c.netns.link(c.t, "up")
}

func (c *Cluster) requireNetns() {
	if c.netns == nil {
		c.t.Fatal("natscluster: Partition and Heal need Run(t, WithPartitionable())")
	}
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill sends the node SIGKILL and waits for it to exit: no flush, no
// goodbye to its peers.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts a killed node again on its ports and store, and waits
// until it accepts clients (not until it caught up: see WaitHealthy).
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	n.start(Binary(n.t), ConfigFile(n.t))
}

func (n *Node) start(bin, conf string) {
	n.t.Helper()
	args := []string{"-c", conf}
	cmd := exec.Command(bin, args...)
	if n.netns != "" {
		// ip netns exec execs the server: the process killed is the server.
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, bin}, args...)...)
	}
	cmd.Env = n.env
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("natscluster: start %s: %v", n.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	err = poll.Wait(30*time.Second, func() error {
		select {
		case <-done:
			return errExited
		default:
		}
		if n.netns != "" {
			// The namespace's listener is reachable from here while the
			// link is up; during a partition only the process is checked.
			return nil
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", n.host, n.ports[0]), time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		n.t.Fatalf("natscluster: %s not listening: %v\n%s", n.Name, err, tail(n.log, 4<<10))
	}
}

var errExited = errors.New("nats-server exited")

// healthy asks the node's monitoring endpoint whether JetStream is current.
func (n *Node) healthy() error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d/healthz", n.host, n.ports[2]))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s not healthy: %s", n.Name, strings.TrimSpace(string(body)))
	}
	return nil
}

// freePort is a port free on host now, below Linux's ephemeral range
// (32768 on): a port the kernel picked for ":0" is handed out again to
// any outgoing connection on this shared machine before nats-server binds
// it, and the node dies on "address already in use".
func freePort(t testing.TB, host string) int {
	t.Helper()
	for range 100 {
		port := fixedPortLow + rand.IntN(fixedPortHigh-fixedPortLow)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue // taken: try another
		}
		l.Close()
		return port
	}
	t.Fatalf("natscluster: no free port in [%d, %d) on %s", fixedPortLow, fixedPortHigh, host)
	return 0
}

// The range freePort picks from: registered-port space no ephemeral
// allocation reaches.
const fixedPortLow, fixedPortHigh = 20000, 32000

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// ConfigFile finds deploy/cluster/nats/node.conf above the working
// directory, in the repository the test runs from.
func ConfigFile(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "deploy", "cluster", "nats", "node.conf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("natscluster: deploy/cluster/nats/node.conf not found above the working directory")
		}
		dir = parent
	}
}
