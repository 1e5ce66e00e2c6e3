package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
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

func expect(t testing.TB, name string, tl tally, refusedOK bool) {
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
	js := r.nats.JetStream()
	bound := collector.Defaults().MaxAckPending()
	var maxPending, polls int
	var pollErr error
	results := r.steady(url, 2*time.Second, 3*time.Second, func() {
		r.chSrv.Stop()
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			if info, err := consumerInfo(js, collector.Defaults().Consumer); err != nil {
				pollErr = err
			} else {
				polls++
				maxPending = max(maxPending, info.NumAckPending)
			}
			time.Sleep(250 * time.Millisecond) // polling interval through the outage
		}
		if err := r.chSrv.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	expect(t, "ClickHouse down", r.reconcile(results), false)
	t.Logf("most unacknowledged events held by the collector during the outage: %d (bound %d, %d polls)", maxPending, bound, polls)
	switch {
	case polls == 0:
		t.Fatalf("the collector's consumer could not be read during the outage: %v", pollErr)
	case maxPending == 0:
		t.Fatal("the collector held nothing unacknowledged while ClickHouse was down: the outage never reached it")
	case maxPending > bound:
		t.Fatalf("pending %d exceeds the consumer's bound %d", maxPending, bound)
	}
	r.verifyClean()
}

// consumerInfo reads the durable consumer's state.
func consumerInfo(js jetstream.JetStream, name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream.Events, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// cutter is a TCP proxy whose connections can all be cut at once, either
// now or the moment a client sends a request (cutOnRequest), so that the
// cut lands while the request is in flight. With a delay, every chunk is
// forwarded that long after it arrived: a slow network, whose bytes in
// transit a cut loses.
type cutter struct {
	ln    net.Listener
	delay time.Duration
	mu    sync.Mutex
	conns []net.Conn
	armed chan struct{} // closed by a client chunk while armed
}

func newCutter(t *testing.T, target string, delay time.Duration) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, delay: delay}
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
			go func() { c.pipe(out, in, true); out.Close() }()
			go func() { c.pipe(in, out, false); in.Close() }()
		}
	}()
	return c
}

// pipe copies src to dst, delayed; a client's chunk fires an armed cut
// once it has been forwarded, while the server has yet to answer it.
func (c *cutter) pipe(dst, src net.Conn, fromClient bool) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now(), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		for range q { // what was in transit is lost; let the reader end
		}
	}()
	for ch := range q {
		time.Sleep(time.Until(ch.at.Add(c.delay))) // the network's latency
		if _, err := dst.Write(ch.data); err != nil {
			return
		}
		if fromClient {
			c.mu.Lock()
			if c.armed != nil {
				close(c.armed)
				c.armed = nil
			}
			c.mu.Unlock()
		}
	}
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// cutOnRequest cuts every connection the moment a client's request has
// been forwarded, and reports whether one came within timeout.
func (c *cutter) cutOnRequest(timeout time.Duration) bool {
	fired := make(chan struct{})
	c.mu.Lock()
	c.armed = fired
	c.mu.Unlock()
	select {
	case <-fired:
		c.cut()
		return true
	case <-time.After(timeout):
		c.mu.Lock()
		c.armed = nil
		c.mu.Unlock()
		return false
	}
}

func TestConnectionsCutMidInsertCreateNoDuplicates(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-cut", audit.Refuse)
	// The collector inserts over HTTP, which goes through the proxy.
	proxy := newCutter(t, r.chHTTP, 0)
	realAddr := r.chHTTP
	r.chHTTP = proxy.ln.Addr().String()
	r.startCollector()
	r.chHTTP = realAddr
	cuts := 0
	results := r.steady(url, time.Second, time.Second, func() {
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			// The collector only inserts: a cut the moment it sends is a cut
			// in the middle of an insert.
			if proxy.cutOnRequest(time.Second) {
				cuts++
			}
		}
	})
	t.Logf("cut the collector's ClickHouse connections %d times, each with an insert in flight", cuts)
	if cuts == 0 {
		t.Fatal("no cut landed on an insert in flight")
	}
	expect(t, "connections cut", r.reconcile(results), false)
	r.verifyClean()
}

// The collector's link to NATS is slow (100 ms each way), so the acks of a
// batch land well after its insert: a kill the moment rows appear in
// ClickHouse, with the link's bytes in transit lost, lands between insert
// and ack. Each kill is checked: rows were stored beyond what JetStream saw
// acknowledged.
func TestCollectorKilledBetweenInsertAndAck(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-kill-collector", audit.Refuse)
	link := newCutter(t, r.nats.Addr().String(), 100*time.Millisecond)
	args := []string{"collector", "-nats", "nats://" + link.ln.Addr().String(), "-clickhouse", r.chAddr, "-database", r.ch.Database()}
	js := r.nats.JetStream()
	consumer := collector.Defaults().Consumer
	kills, between := 0, 0
	var last *process
	results := r.steady(url, 0, time.Second, func() {
		end := time.Now().Add(outage())
		for time.Now().Before(end) {
			stored := r.maxStoredSeq()
			last = r.spawn(args...)
			// After a kill between insert and ack, the batch's messages wait
			// out the consumer's ack wait (30 s) before they are redelivered,
			// and hold its max_ack_pending until then.
			if err := poll.Wait(45*time.Second, func() error {
				if r.maxStoredSeq() <= stored {
					return fmt.Errorf("no insert after stream seq %d", stored)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			last.kill()
			link.cut() // the acks on their way are lost with the process
			kills++
			var acked uint64 // nothing, while the consumer does not exist
			info, err := consumerInfo(js, consumer)
			switch {
			case err == nil:
				acked = info.AckFloor.Stream
			case !errors.Is(err, jetstream.ErrConsumerNotFound):
				t.Fatal(err)
			}
			if r.maxStoredSeq() > acked {
				between++
			}
		}
		last = r.spawn(args...)
	})
	t.Logf("SIGKILLed the collector %d times, %d of them between an insert and its ack", kills, between)
	if between == 0 {
		t.Fatalf("none of %d kills landed between an insert and its ack", kills)
	}
	tl := r.reconcile(results)
	expect(t, "collector killed", tl, false)
	raw, err := r.ch.Query(context.Background(), "SELECT count() - uniqExact(event_id) FROM "+r.ch.Database()+".events_raw")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("redelivered rows stored twice in events_raw (collapsed by the view, and by merges): %s", raw[0][0])
	r.verifyClean()
}

// maxStoredSeq is the highest stream sequence number stored in events_raw.
func (r *rig) maxStoredSeq() uint64 {
	r.t.Helper()
	rows, err := r.ch.Query(context.Background(), "SELECT max(stream_seq) FROM "+r.ch.Database()+".events_raw")
	if err != nil {
		r.t.Fatal(err)
	}
	n, _ := strconv.ParseUint(rows[0][0], 10, 64)
	return n
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
	cfgFile := r.enforcerFile("enforcer.yaml", cfg)
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
