package correlator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// denials is the detector these tests drive the correlator with: it raises
// an alert when one session of one tenant has threshold denied decisions
// within window, by event time, with an id derived from the rule, tenant,
// session and first evidence event — the contract the correlator relies
// on, in the smallest form that exercises it. It also counts every event
// it is given, so a test can tell an event observed twice.
type denials struct {
	threshold int
	window    time.Duration
	// crossTenant, when set, raises each alert for this tenant instead: a
	// faulty engine, which the correlator must not let through.
	crossTenant string
	// invalidFirst makes the first alert an invalid event (a faulty engine).
	invalidFirst bool
	// title, when set, is the alerts' title (to make them large).
	title string
	// byInstance groups by enforcer instance across tenants, and raises
	// tenant-less alerts, as the record rules (sequence gaps) do.
	byInstance bool

	mu     sync.Mutex
	open   map[[2]string][]*event.Event
	seen   map[string]int // event id -> times observed
	kinds  map[event.Kind]int
	raised int
}

func newDenials() *denials {
	return &denials{threshold: 3, window: time.Minute, open: map[[2]string][]*event.Event{},
		seen: map[string]int{}, kinds: map[event.Kind]int{}}
}

func (d *denials) Observe(e *event.Event) []*event.Event { return d.ObserveAgent(e, ddl.Agent{}) }

func (d *denials) ObserveAgent(e *event.Event, _ ddl.Agent) []*event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[e.ID]++
	d.kinds[e.Kind]++
	if e.Kind != event.KindDecision || e.Decision.Effect != event.EffectDeny || e.Identity == nil {
		return nil
	}
	k := [2]string{e.Tenant, e.Identity.SessionID}
	if d.byInstance {
		k = [2]string{"", e.Instance}
	}
	g := append(d.open[k], e)
	if e.Time.Sub(g[0].Time) > d.window {
		g = g[1:]
	}
	if len(g) < d.threshold {
		d.open[k] = g
		return nil
	}
	delete(d.open, k)
	sum := sha256.Sum256([]byte("denials\x00" + k[0] + "\x00" + k[1] + "\x00" + g[0].ID))
	tenant := k[0]
	if d.crossTenant != "" {
		tenant = d.crossTenant
	}
	var ids []string
	for _, x := range g {
		ids = append(ids, x.ID)
	}
	d.raised++
	title, severity := "repeated denials", event.SeverityHigh
	if d.title != "" {
		title = d.title
	}
	if d.invalidFirst && d.raised == 1 {
		severity = "bogus"
	}
	return []*event.Event{{ID: "alert-" + hex.EncodeToString(sum[:12]), Kind: event.KindAlert, Time: e.Time, Tenant: tenant,
		Alert: &event.Alert{RuleID: "denials", Title: title, Severity: severity,
			Group: []event.GroupValue{{Field: "session", Value: k[1]}}, First: g[0].Time, Last: e.Time,
			Count: len(g), Evidence: ids}}}
}

func (d *denials) Advance(now time.Time) []*event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, g := range d.open {
		if now.Sub(g[len(g)-1].Time) > d.window {
			delete(d.open, k)
		}
	}
	return nil
}

func (d *denials) twice() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for id, n := range d.seen {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

type rig struct {
	t    testing.TB
	srv  *natstest.Server // nil on a nats-server process (natsProcess)
	url  string
	js   jetstream.JetStream
	ch   *chstore.Client
	addr string
	chs  interface {
		Stop()
		Restart(context.Context) error
	}
	pub *publisher
}

func newRig(t testing.TB) *rig {
	srv := natstest.Run(t)
	r := rigOn(t, srv.URL())
	r.srv = srv
	return r
}

// rigOn is a rig on the JetStream server at url.
func rigOn(t testing.TB, url string) *rig {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(context.Background(), js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	addr, chs := chtest.Server(t)
	return &rig{t: t, url: url, js: js, ch: chtest.Open(t, addr), addr: addr, chs: chs, pub: &publisher{js: js}}
}

// start runs a correlator with detector d, partition part of count.
func (r *rig) start(d correlator.Detector, part, count int) func() {
	var opts []correlator.Option
	if d != nil {
		opts = append(opts, correlator.WithDetector(d))
	}
	return r.startWith(func(cfg *correlator.Config) {
		cfg.Partition = correlator.Partition{Index: part, Count: count}
		cfg.Instance = fmt.Sprintf("correlator:p%d", part)
	}, opts...)
}

// startWith runs a correlator of the rig's defaults changed by set.
func (r *rig) startWith(set func(*correlator.Config), opts ...correlator.Option) func() {
	cfg := correlator.Defaults()
	cfg.NATSURL = stream.URLs(r.url)
	cfg.ClickHouse.Addr = chstore.AddrList(r.addr)
	cfg.ClickHouse.Database = r.ch.Database()
	cfg.BatchWait = 50 * time.Millisecond
	cfg.RetryDelay = 200 * time.Millisecond
	cfg.Instance = "correlator:test"
	set(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := correlator.New(ctx, cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; c.Close() }) }
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) deny(tenant, session string, n int) {
	for range n {
		r.pub.send(r.t, tenant, session, event.KindDecision, event.EffectDeny)
	}
}

// stored reads every event in the stream, in order.
func (r *rig) stored() []*event.Event {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _ := r.js.Stream(ctx, stream.Events)
	info, _ := s.Info(ctx)
	var out []*event.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatal(err)
		}
		evs, err := event.DecodeMessageOn(m.Subject, m.Data)
		if err != nil {
			continue // a spoofed subject: no one's record
		}
		out = append(out, evs...)
	}
	return out
}

// alerts returns the stored alerts by group "tenant/session", each with
// the instance that raised it.
func (r *rig) alerts() map[string][]string {
	out := map[string][]string{}
	for _, e := range r.stored() {
		if e.Kind == event.KindAlert {
			k := e.Tenant + "/" + e.Alert.Group[0].Value
			out[k] = append(out[k], e.Instance)
		}
	}
	return out
}

// waitAlerts polls until the stored alerts are want (group -> count).
func (r *rig) waitAlerts(want map[string]int) map[string][]string {
	r.t.Helper()
	var got map[string][]string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got = r.alerts()
		if sameCounts(got, want) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("alerts %v, want counts %v", got, want)
	return nil
}

func sameCounts(got map[string][]string, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, n := range want {
		if len(got[k]) != n {
			return false
		}
	}
	return true
}

// checkChains verifies the correlators' chains as stored: whole, with no
// gap, checkpointed (polling for the checkpoint after the last alert).
func (r *rig) checkChains() {
	r.t.Helper()
	var rep chain.Report
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var mine []*event.Event
		for _, e := range r.stored() {
			if e.Instance != "enf" {
				mine = append(mine, e)
			}
		}
		if rep = chain.Check(mine, chain.Options{}); len(rep.Findings) == 0 && rep.Checkpoints > 0 &&
			mine[len(mine)-1].Kind == event.KindCheckpoint {
			return
		}
	}
	r.t.Fatalf("correlator chains: %+v", rep)
}

// waitIdle polls until the correlator's consumer has nothing pending.
func (r *rig) waitIdle(consumer string) { r.waitIdleFor(consumer, 20*time.Second) }

func (r *rig) waitIdleFor(consumer string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := r.js.Consumer(context.Background(), stream.Events, consumer)
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("consumer %s never caught up", consumer)
}

// Alerts are raised once per group, never from another tenant's events, and
// the correlator never reads its own alerts back.
func TestAlertsStayInTheirTenant(t *testing.T) {
	r := newRig(t)
	d := newDenials()
	r.start(d, 0, 1)
	r.deny("acme", "s1", 2)
	r.deny("globex", "s1", 2) // same session id, other tenant: its own group
	r.pub.spoofAs = "acme"    // globex's events under acme's subject: never acme's
	r.deny("globex", "s1", 2)
	r.pub.spoofAs = ""
	r.deny("acme", "s2", 3)
	r.waitAlerts(map[string]int{"acme/s2": 1})
	r.deny("acme", "s1", 1)
	r.waitAlerts(map[string]int{"acme/s1": 1, "acme/s2": 1})
	r.waitIdle("correlator-detect")
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kinds[event.KindAlert] != 0 || d.kinds[event.KindCheckpoint] != 0 {
		t.Fatalf("the engine was given the correlator's own records: %v", d.kinds)
	}
	if len(d.open[[2]string{"globex", "s1"}]) != 2 {
		t.Fatalf("globex/s1 holds %d events, want its own 2", len(d.open[[2]string{"globex", "s1"}]))
	}
}

// An engine that raises an alert for another tenant than its event's is
// faulty; the alert is dropped, not published under that tenant.
func TestAlertForAnotherTenantIsDropped(t *testing.T) {
	r := newRig(t)
	d := newDenials()
	d.crossTenant = "globex"
	r.start(d, 0, 1)
	r.deny("acme", "s1", 3)
	r.waitIdle("correlator-detect")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d.mu.Lock()
		raised := d.raised
		d.mu.Unlock()
		if raised == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine raised nothing")
		}
	}
	if got := r.alerts(); len(got) != 0 {
		t.Fatalf("alerts %v published", got)
	}
}

// A batch whose alert JetStream refuses (here: larger than the stream
// takes) fails and is redelivered until the alert can be recorded; then it
// is recorded once, and the engine saw each event once.
func TestRefusedAlertIsRedeliveredThenRecordedOnce(t *testing.T) {
	defer correlator.SetFlushTimeout(300 * time.Millisecond)()
	r := newRig(t)
	d := newDenials()
	d.title = strings.Repeat("x", 4096)
	r.start(d, 0, 1)
	ctx := context.Background()
	limited := stream.EventsConfig(stream.Defaults())
	limited.MaxMsgSize = 2048
	if _, err := r.js.UpdateStream(ctx, limited); err != nil {
		t.Fatal(err)
	}
	r.deny("acme", "s1", 3)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, _ := r.js.Consumer(ctx, stream.Events, "correlator-detect")
		info, _ := c.Info(ctx)
		if info != nil && info.NumRedelivered > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no redelivery")
		}
	}
	if got := r.alerts(); len(got) != 0 {
		t.Fatalf("alerts %v while refused", got)
	}
	if _, err := r.js.UpdateStream(ctx, stream.EventsConfig(stream.Defaults())); err != nil {
		t.Fatal(err)
	}
	r.waitIdle("correlator-detect")
	r.waitAlerts(map[string]int{"acme/s1": 1})
	if tw := d.twice(); len(tw) != 0 {
		t.Fatalf("events observed twice: %v", tw)
	}
	r.checkChains()
}

// An invalid alert from a faulty engine is dropped, and does not hold up
// the alerts after it.
func TestInvalidAlertIsDroppedNotRetriedForever(t *testing.T) {
	r := newRig(t)
	d := newDenials()
	d.invalidFirst = true
	r.start(d, 0, 1)
	r.deny("acme", "s1", 3)
	r.deny("acme", "s2", 3)
	r.waitAlerts(map[string]int{"acme/s2": 1})
	r.waitIdle("correlator-detect")
}

// Detection does not wait on ClickHouse: with it down, alerts still come.
func TestAlertsFlowWhileClickHouseIsDown(t *testing.T) {
	r := newRig(t)
	r.start(newDenials(), 0, 1)
	r.chs.Stop()
	r.deny("acme", "s1", 3)
	r.waitAlerts(map[string]int{"acme/s1": 1})
	if err := r.chs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A correlator stopped with a window open rebuilds it from the stream: the
// window's alert is raised after the restart, once, and the alerts raised
// before are not raised again. Both runs' chains verify.
func TestOpenWindowSurvivesRestart(t *testing.T) {
	r := newRig(t)
	stop := r.start(newDenials(), 0, 1)
	r.deny("acme", "s1", 3)
	r.deny("acme", "s2", 2) // open at the stop
	r.waitAlerts(map[string]int{"acme/s1": 1})
	r.waitIdle("correlator-detect")
	stop()

	r.start(newDenials(), 0, 1)
	r.deny("acme", "s2", 1)
	r.waitAlerts(map[string]int{"acme/s1": 1, "acme/s2": 1})
	r.waitIdle("correlator-detect")
	r.checkChains()
}

// Two correlators share the stream by tenant: every group's alert comes
// from exactly one of them, and none is lost or doubled.
func TestTwoCorrelatorsSplitTheTenants(t *testing.T) {
	r := newRig(t)
	d0, d1 := newDenials(), newDenials()
	r.start(d0, 0, 2)
	r.start(d1, 1, 2)
	want := map[string]int{}
	for i := range 24 {
		tenant := fmt.Sprintf("t%02d", i)
		for _, s := range []string{"s1", "s2"} {
			r.deny(tenant, s, 3)
			want[tenant+"/"+s] = 1
		}
		r.deny(tenant, "quiet", 2)
	}
	got := r.waitAlerts(want)
	byInstance := map[string]int{}
	for g, instances := range got {
		if len(instances) != 1 {
			t.Fatalf("%s alerted by %v", g, instances)
		}
		byInstance[instances[0]]++
	}
	if byInstance["correlator:p0"] == 0 || byInstance["correlator:p1"] == 0 {
		t.Fatalf("one correlator did all the work: %v", byInstance)
	}
	// A tenant's groups all went to one correlator.
	owner := map[string]string{}
	keys := make([]string, 0, len(got))
	for g := range got {
		keys = append(keys, g)
	}
	sort.Strings(keys)
	for _, g := range keys {
		tenant := g[:3]
		if o, ok := owner[tenant]; ok && o != got[g][0] {
			t.Fatalf("tenant %s split between %s and %s", tenant, o, got[g][0])
		}
		owner[tenant] = got[g][0]
	}
	r.waitIdle("correlator-detect-p0of2")
	r.waitIdle("correlator-detect-p1of2")
	if tw := append(d0.twice(), d1.twice()...); len(tw) != 0 {
		t.Fatalf("events observed twice: %v", tw)
	}
}

// A finding about an enforcer instance across its tenants (as sequence
// gaps are) is judged by the one correlator that owns the tenant-less
// events, which sees every tenant's events for it, and raised once; the
// tenants' own groups stay with their owners.
func TestTenantlessFindingsSeeEveryTenant(t *testing.T) {
	r := newRig(t)
	owner := 0
	if !(correlator.Partition{Index: 0, Count: 2}).Owns("") {
		owner = 1
	}
	var acme, globex string // one tenant of each partition
	for i := 0; acme == "" || globex == ""; i++ {
		name := fmt.Sprintf("t%d", i)
		if (correlator.Partition{Index: 0, Count: 2}).Owns(name) {
			acme = name
		} else {
			globex = name
		}
	}
	ds := []*denials{newDenials(), newDenials()}
	for i, d := range ds {
		d.byInstance = true
		r.start(d, i, 2)
	}
	r.deny(acme, "s1", 1)
	r.deny(globex, "s1", 2) // three denials of instance enf, over two partitions' tenants
	got := r.waitAlerts(map[string]int{"/enf": 1})
	if got["/enf"][0] != fmt.Sprintf("correlator:p%d", owner) {
		t.Fatalf("tenant-less alert raised by %v, want correlator:p%d", got["/enf"], owner)
	}
	r.waitIdle("correlator-detect-p0of2")
	r.waitIdle("correlator-detect-p1of2")
	if got := r.alerts(); len(got) != 1 {
		t.Fatalf("alerts %v", got)
	}
}
