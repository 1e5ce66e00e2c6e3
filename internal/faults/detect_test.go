package faults

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

// startCorrelator runs a correlator in this process, with the shipped
// rule pack, until the test ends.
func (r *rig) startCorrelator(instance string) {
	r.t.Helper()
	cfg := correlator.Defaults()
	cfg.NATSURL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = stream.URLs(r.natsURL()), chstore.AddrList(r.chAddr), r.ch.Database()
	cfg.BatchWait, cfg.RetryDelay, cfg.Instance = 100*time.Millisecond, 200*time.Millisecond, instance
	ctx, cancel := context.WithCancel(context.Background())
	c, err := correlator.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done; c.Close() })
}

// denyCalls sends n calls the policy denies (tool shell) as caller.
func (r *rig) denyCalls(url string, c workload.Caller, n int) {
	r.t.Helper()
	driver := &workload.Driver{URL: url + "/mcp", Issuer: r.issuer, Client: &http.Client{Timeout: 10 * time.Second}}
	calls := make([]workload.Call, n)
	for i := range calls {
		calls[i] = workload.Call{Caller: c, RPCMethod: "tools/call", Tool: "shell", Args: map[string]any{"i": i}}
	}
	for _, res := range driver.Run(context.Background(), calls, 1) {
		if res.Status != http.StatusForbidden {
			r.t.Fatalf("call answered %d, want 403", res.Status)
		}
	}
}

// The whole flow: requests through the enforcer, JetStream, the correlator
// running the shipped pack, the collector, ClickHouse's alerts view. Ten
// denials of one agent in a minute raise the pack's denial-burst alert,
// once, within the collector's batching; nine do not, nor do five and
// five of one agent name in two tenants (a group never spans tenants).
// Every alert's evidence is its own tenant's, and `rampart verify` checks
// the correlator's chain with the enforcer's.
func TestShippedPackAlertsEndToEnd(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-detect", audit.Refuse)
	r.startCollector()
	r.startCorrelator("correlator:e2e")

	caller := func(tenant, agent string) workload.Caller {
		return workload.Caller{Tenant: tenant, Principal: "user:alice", Actors: []string{agent}, Session: "s-" + agent}
	}
	// The quiet ones first: the stream is handled in order, so once the
	// loud one's alert is stored, theirs would have been too.
	r.denyCalls(url, caller("acme", "agent:calm"), 9)
	r.denyCalls(url, caller("acme", "agent:twin"), 5)
	r.denyCalls(url, caller("globex", "agent:twin"), 5)
	sent := time.Now()
	r.denyCalls(url, caller("acme", "agent:scout"), 10)

	db := r.ch.Database()
	q := "SELECT tenant, arrayStringConcat(group_values, ','), matched, instance FROM " + db +
		".alerts WHERE rule_id = 'probing-denial-burst' ORDER BY tenant, event_time"
	var rows [][]string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if rows, err = r.ch.Query(context.Background(), q); err == nil && len(rows) > 0 {
			break
		}
	}
	t.Logf("denial burst alert stored %v after the last denial", time.Since(sent).Round(10*time.Millisecond))
	if len(rows) != 1 || rows[0][0] != "acme" || !strings.Contains(rows[0][1], "agent:scout") || rows[0][2] != "10" || rows[0][3] != "correlator:e2e" {
		t.Fatalf("denial burst alerts %v, want one for acme's agent:scout (10 events) by correlator:e2e", rows)
	}

	// No alert names evidence of another tenant.
	cross, err := r.ch.Query(context.Background(), "SELECT count() FROM "+db+".alerts AS a ARRAY JOIN evidence AS ev "+
		"INNER JOIN (SELECT event_id, tenant AS ev_tenant FROM "+db+".events) AS e ON e.event_id = ev WHERE e.ev_tenant != a.tenant")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := r.ch.Query(context.Background(), "SELECT rule_id, tenant, count() FROM "+db+".alerts GROUP BY rule_id, tenant ORDER BY rule_id, tenant")
	t.Logf("all alerts by rule and tenant: %v", all)
	if cross[0][0] != "0" {
		t.Fatalf("%s alert evidence events of another tenant", cross[0][0])
	}
	r.verifyClean()
}

// streamEvents reads every decodable event the stream holds, in order.
func (r *rig) streamEvents() []*event.Event {
	r.t.Helper()
	ctx := context.Background()
	js := r.jetStream()
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		r.t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	var out []*event.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatal(err)
		}
		if evs, err := event.DecodeMessageOn(m.Subject, m.Data); err == nil {
			out = append(out, evs...)
		}
	}
	return out
}

// waitConsumerIdle polls until the durable consumer has nothing pending.
func (r *rig) waitConsumerIdle(name string, d time.Duration) {
	r.t.Helper()
	js := r.jetStream()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := js.Consumer(context.Background(), stream.Events, name); err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
	}
	if c, err := js.Consumer(context.Background(), stream.Events, name); err == nil {
		if info, err := c.Info(context.Background()); err == nil {
			r.t.Logf("consumer %s: pending %d, awaiting ack %d, redelivered %d, pulls waiting %d, delivered through %d, acked through %d",
				name, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.Delivered.Stream, info.AckFloor.Stream)
		}
	}
	for _, kind := range []string{"collector", "correlator"} {
		if b, err := os.ReadFile(filepath.Join(r.dir, kind+".log")); err == nil {
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			r.t.Logf("%s.log, last 4 KB:\n%s", kind, b)
		}
	}
	r.t.Fatalf("consumer %s never caught up", name)
}

// `rampart correlator` SIGKILLed again and again under load through the
// enforcer: once a last one has caught up, the alerts in the stream and in
// the alerts view are exactly those the shipped pack raises over the
// stored events in stream order: none lost, none doubled.
func TestCorrelatorProcessKilledUnderLoad(t *testing.T) {
	r := newRig(t)
	url := r.startEnforcer("enf-kill-correlator", audit.Refuse)
	r.startCollector()
	args := []string{"correlator", "-nats", r.nats.URL(), "-clickhouse", r.chAddr, "-database", r.ch.Database()}
	rampartBinary(t) // built before the clock starts
	// Denials from 24 agents of two tenants in turn: each agent's tenth
	// denial within a minute completes a burst, every few seconds.
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		driver := &workload.Driver{URL: url + "/mcp", Issuer: r.issuer, Client: &http.Client{Timeout: 10 * time.Second}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for ; ; n++ {
			select {
			case <-stop:
				done <- n
				return
			case <-tick.C:
			}
			c := workload.Caller{Tenant: []string{"acme", "globex"}[n%2], Principal: "user:alice",
				Actors: []string{"agent:" + strconv.Itoa(n%24)}, Session: "s" + strconv.Itoa(n%24)}
			driver.Run(context.Background(), []workload.Call{{Caller: c, RPCMethod: "tools/call", Tool: "shell"}}, 1)
		}
	}()
	kills := 0
	for end := time.Now().Add(outage()); time.Now().Before(end); kills++ {
		p := r.spawn(args...)
		time.Sleep(time.Duration(300+kills*37%400) * time.Millisecond)
		p.kill()
	}
	r.spawn(args...)
	time.Sleep(time.Second) // load duration, not a wait for an event
	close(stop)
	t.Logf("SIGKILLed the correlator %d times under %d requests", kills, <-done)
	// The killed runs' unacknowledged messages come back after the
	// consumer's 30s ack wait; the last run skips them and acks them.
	r.waitConsumerIdle("correlator-detect", 90*time.Second)

	if al := r.reconcileAlerts(); al.Expected == 0 || !al.OK() {
		t.Fatalf("alerts do not reconcile: %s", al)
	}
	r.verifyClean()
}

// alertTally reconciles alerts: those the shipped pack raises over the
// stored events in stream order, against those the correlators published
// and the alerts view holds.
type alertTally struct {
	Expected, Raised, Lost, Doubled, Unexpected, Stored int
}

func (a alertTally) OK() bool {
	return a.Lost+a.Doubled+a.Unexpected == 0 && a.Raised == a.Expected && a.Stored == a.Expected
}

func (a alertTally) String() string {
	return fmt.Sprintf("alerts expected %d, raised %d (lost %d, doubled %d, unexpected %d), in the alerts view %d",
		a.Expected, a.Raised, a.Lost, a.Doubled, a.Unexpected, a.Stored)
}

// reconcileAlerts runs the shipped pack over the stream's events (the
// correlators must have caught up) and compares.
func (r *rig) reconcileAlerts() alertTally {
	r.t.Helper()
	engine := detect.NewEngine(detect.Shipped(), detect.Options{})
	defer engine.Close()
	expected, stored := map[string]bool{}, map[string]int{}
	for _, e := range r.streamEvents() {
		switch {
		case e.Kind == event.KindAlert:
			stored[e.ID]++
		case !correlator.IsCorrelatorInstance(e.Instance):
			for _, a := range engine.Observe(e) {
				expected[a.ID] = true
			}
		}
	}
	al := alertTally{Expected: len(expected), Raised: len(stored)}
	for id := range expected {
		if stored[id] == 0 {
			al.Lost++
		}
	}
	for id, n := range stored {
		if n > 1 {
			al.Doubled++
		}
		if !expected[id] {
			al.Unexpected++
		}
	}
	// The view: one row per alert, once the collector stored them all.
	_ = poll.Wait(30*time.Second, func() error {
		rows, err := r.ch.Query(context.Background(), "SELECT count(), uniqExact(alert_id) FROM "+r.ch.Database()+".alerts")
		if err != nil {
			return err
		}
		al.Stored, _ = strconv.Atoi(rows[0][0])
		if rows[0][0] != rows[0][1] {
			al.Stored = -1 // a doubled row: never equal to expected
		}
		if al.Stored != al.Expected {
			return fmt.Errorf("alerts view holds %d, want %d", al.Stored, al.Expected)
		}
		return nil
	})
	r.t.Log(al)
	return al
}
