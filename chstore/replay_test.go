package chstore_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestReplayReadsHistoryInStreamOrder: a replay yields the events of its
// range in the order the stream carried them — not their time order, and
// within one message (a bundle) in seq order — each once however often it
// was stored, rebuilt whole (each hashes as it did before storage), over
// both transports; the range is half-open and the tenant filter holds.
func TestReplayReadsHistoryInStreamOrder(t *testing.T) {
	ctx := context.Background()
	addr, _ := chtest.Server(t)
	overHTTP := chtest.Open(t, addr)
	cfg := chstore.Defaults()
	cfg.Addr, cfg.Database = chstore.AddrList(addr), overHTTP.Database()
	native, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()

	events := fixture() // t0 .. t0+3s: acme 0-4, o'brien\co 5-6
	alert := alertFixture("01ALERT000000000000000000A", "acme", "corr-1", 1)
	events = append(events, alert)
	// Stream sequences: the alert was carried first though it is newest,
	// events 1 and 2 travelled as one message (a bundle), 3 before 0.
	streamSeq := []uint64{20, 30, 30, 10, 40, 50, 60, 5}
	var rows [][]any
	want := map[string]chain.Hash{}
	// What the inventory said of each agent: nothing (no inventory), an
	// entry, or no entry; replayed as stored.
	agents := map[string]ddl.Agent{}
	for i, e := range events {
		want[e.ID] = chain.Of(e)
		switch i % 3 {
		case 1:
			agents[e.ID] = ddl.Agent{Owner: "bob", Team: "research", Purpose: "web research", RiskTier: "high", Environment: "prod", Registered: true, Inventory: "v1"}
		case 2:
			agents[e.ID] = ddl.Agent{Inventory: "v1"}
		}
		rows = append(rows, ddl.Values(ddl.Events, &ddl.Row{Event: e, StreamSeq: streamSeq[i], CollectedAt: t0, Agent: agents[e.ID]}))
	}
	rows = append(rows, ddl.Values(ddl.Events, &ddl.Row{Event: events[4], StreamSeq: 40, CollectedAt: t0.Add(time.Minute), Agent: agents[events[4].ID]})) // redelivered
	// Outside the range: the end is exclusive.
	late := *events[0]
	late.ID, late.Time = "01LATE0000000000000000000Z", t0.Add(time.Hour)
	rows = append(rows, ddl.EventRow(&late, 1, t0))
	if err := overHTTP.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}

	all := chstore.Range{From: t0, To: late.Time}
	wantOrder := []string{alert.ID, events[3].ID, events[0].ID, events[1].ID, events[2].ID, events[4].ID, events[5].ID, events[6].ID}
	for name, c := range map[string]*chstore.Client{"http": overHTTP, "native": native} {
		t.Run(name, func(t *testing.T) {
			var got []string
			var last uint64
			err := c.Replay(ctx, all, func(r *ddl.Row) error {
				e, seq := r.Event, r.StreamSeq
				got = append(got, e.ID)
				if r.Agent != agents[e.ID] {
					t.Errorf("event %s: agent %+v read back, stored %+v", e.ID, r.Agent, agents[e.ID])
				}
				if seq < last {
					t.Errorf("stream seq %d after %d", seq, last)
				}
				last = seq
				if chain.Of(e) != want[e.ID] {
					t.Errorf("event %s read back changed", e.ID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, wantOrder) {
				t.Fatalf("replayed\n %q\nwant\n %q", got, wantOrder)
			}
			got = nil
			err = c.Replay(ctx, chstore.Range{From: t0.Add(time.Second), To: t0.Add(3 * time.Second), Tenant: "acme"}, func(r *ddl.Row) error {
				got = append(got, r.Event.ID)
				return nil
			})
			if err != nil || !reflect.DeepEqual(got, []string{alert.ID, events[3].ID, events[4].ID}) {
				t.Fatalf("acme, [t0+1s, t0+3s): %q %v", got, err)
			}
		})
	}
	// The same query on current ClickHouse gives the same order.
	embedded, chdbDB := chdbtest.New(t)
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	got26, err := embedded.Query(ctx, chstore.ReplayQuery(chdbDB, []string{"event_id", "agent_owner", "agent_risk_tier", "agent_registered", "agent_inventory"}, all))
	if err != nil {
		t.Fatal(err)
	}
	var ids26 []string
	for _, r := range got26 {
		ids26 = append(ids26, r[0])
		a := agents[r[0]]
		if w := []string{r[0], a.Owner, a.RiskTier, map[bool]string{true: "1", false: "0"}[a.Registered], a.Inventory}; !reflect.DeepEqual(r, w) {
			t.Errorf("chdb-26: %q, stored %q", r, w)
		}
	}
	if !reflect.DeepEqual(ids26, wantOrder) {
		t.Fatalf("chdb-26 replays\n %q\nwant\n %q", ids26, wantOrder)
	}
	for name, bad := range map[string]chstore.Range{"empty": {From: t0, To: t0}, "reversed": {From: t0, To: t0.Add(-time.Second)}, "open": {From: t0}} {
		if err := native.Replay(ctx, bad, func(*ddl.Row) error { return nil }); err == nil {
			t.Errorf("%s range accepted", name)
		}
	}
}
