package faults

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/stream"
)

// steady runs load against url for before, then fault(), then after.
func (r *rig) steady(url string, before, after time.Duration, fault func()) []result {
	stop := make(chan struct{})
	collect := r.load(url, 100, stop)
	time.Sleep(before) // load duration, not a wait for an event
	fault()
	time.Sleep(after)
	close(stop)
	return collect()
}

func expect(t *testing.T, name string, tl tally, refusedOK bool) {
	t.Helper()
	t.Logf("%s: %s", name, tl)
	if tl.Lost != 0 || tl.Duplicated != 0 || tl.ForwardedUnrecorded != 0 {
		t.Fatalf("%s: the record failed its promise: %s", name, tl)
	}
	if !refusedOK && tl.Refused != 0 {
		t.Fatalf("%s: %d requests refused", name, tl.Refused)
	}
	if tl.Allowed == 0 || tl.Denied == 0 {
		t.Fatalf("%s: the load did not run: %s", name, tl)
	}
}

func TestNATSOutageWithSpoolRecordsEverything(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-spool", audit.Spool)
	r.startCollector()
	results := r.steady(url, 2*time.Second, 3*time.Second, func() {
		r.nats.Shutdown()
		r.nats.WaitForShutdown()
		time.Sleep(outage()) // the outage itself
		r.nats.Restart()
	})
	expect(t, "NATS down, spool", r.reconcile(results), false)
	r.verifyClean()
}

func TestNATSOutageWithoutSpoolRefusesNeverForwardsUnrecorded(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-refuse", audit.Refuse)
	r.startCollector()
	results := r.steady(url, 2*time.Second, 3*time.Second, func() {
		r.nats.Shutdown()
		r.nats.WaitForShutdown()
		time.Sleep(outage())
		r.nats.Restart()
	})
	tl := r.reconcile(results)
	expect(t, "NATS down, refuse", tl, true)
	if tl.Refused == 0 {
		t.Fatal("no request was refused while NATS was down")
	}
	r.verifyClean()
}

func TestClickHouseOutageHoldsBoundedPendingAndCatchesUp(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-ch", audit.Refuse)
	r.startCollector()
	var maxPending int
	results := r.steady(url, 2*time.Second, 3*time.Second, func() {
		r.chSrv.Stop()
		nc, _ := nats.Connect(r.nats.URL())
		defer nc.Close()
		js, _ := jetstream.New(nc)
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			if c, err := js.Consumer(context.Background(), stream.Events, "collector"); err == nil {
				if info, err := c.Info(context.Background()); err == nil {
					maxPending = max(maxPending, info.NumAckPending)
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err := r.chSrv.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	expect(t, "ClickHouse down", r.reconcile(results), false)
	t.Logf("most unacknowledged events held by the collector during the outage: %d (bound %d)", maxPending, 1000)
	if maxPending > 1000 {
		t.Fatalf("pending %d exceeds the batch bound", maxPending)
	}
	r.verifyClean()
}

// cutter is a TCP proxy whose connections can all be cut at once.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func TestConnectionsCutMidInsertCreateNoDuplicates(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-cut", audit.Refuse)
	proxy := newCutter(t, r.chAddr)
	realAddr := r.chAddr
	r.chAddr = proxy.ln.Addr().String() // the collector goes through the proxy
	r.startCollector()
	r.chAddr = realAddr
	cuts := 0
	results := r.steady(url, time.Second, time.Second, func() {
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			time.Sleep(150 * time.Millisecond)
			proxy.cut()
			cuts++
		}
	})
	t.Logf("cut the collector's ClickHouse connections %d times", cuts)
	expect(t, "connections cut", r.reconcile(results), false)
}

func TestCollectorKilledBetweenInsertAndAck(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-kill-collector", audit.Refuse)
	args := []string{"collector", "-nats", r.nats.URL(), "-clickhouse", r.chAddr, "-database", r.ch.Database()}
	kills := 0
	var last *process
	results := r.steady(url, 0, time.Second, func() {
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			last = r.spawn(args...)
			time.Sleep(time.Duration(300+kills*37%400) * time.Millisecond)
			last.kill()
			kills++
		}
		last = r.spawn(args...)
	})
	t.Logf("SIGKILLed the collector %d times", kills)
	tl := r.reconcile(results)
	expect(t, "collector killed", tl, false)
	raw, _ := r.ch.Query(context.Background(), "SELECT count() - uniqExact(event_id) FROM "+r.ch.Database()+".events_raw")
	t.Logf("redelivered rows stored twice in events_raw (collapsed by the view): %s", raw[0][0])
	r.verifyClean()
}

func TestPoisonMessageIsDeadLetteredTheRestStoredOnce(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-poison", audit.Refuse)
	r.startCollector()
	nc, err := nats.Connect(r.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	results := r.steady(url, time.Second, 2*time.Second, func() {
		if _, err := js.Publish(context.Background(), "rampart.v1.acme.request", []byte(`{"v":1,"id":"poison","kind":"request"`)); err != nil {
			t.Fatal(err)
		}
	})
	expect(t, "poison message", r.reconcile(results), false)
	dlq, err := js.Stream(context.Background(), stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dlq.Info(context.Background())
	if info.State.Msgs != 1 {
		t.Fatalf("dead-letter stream holds %d messages, want 1", info.State.Msgs)
	}
}

func TestEnforcerKilledRepeatedlyNeverForwardsUnrecorded(t *testing.T) {
	r := newRig(t)
	r.startCollector()
	addr := freeAddr(t)
	cfg := r.enforcerConfig("enf-killed", audit.Refuse)
	cfg.Listen = addr
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(r.dir, "enforcer.yaml")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := r.spawn("enforcer", "-config", cfgFile)
	waitListening(t, addr)
	kills := 0
	results := r.steady("http://"+addr, time.Second, 2*time.Second, func() {
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			time.Sleep(time.Duration(400+kills*53%500) * time.Millisecond)
			p.kill()
			kills++
			p = r.spawn("enforcer", "-config", cfgFile)
			waitListening(t, addr)
		}
	})
	t.Logf("SIGKILLed the enforcer %d times", kills)
	tl := r.reconcile(results)
	t.Logf("enforcer killed: %s", tl)
	if tl.ForwardedUnrecorded != 0 || tl.Lost != 0 || tl.Duplicated != 0 {
		t.Fatalf("the record failed its promise: %s", tl)
	}
	if len(r.backend.Seen()) == 0 {
		t.Fatal("the backend saw nothing")
	}
	r.verifyClean()
}
