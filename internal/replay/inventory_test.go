package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/internal/replay"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// The inventory both the collector and the live correlator read.
const agents = `agents:
  - subject: "agent:planner"
    owner: alice@acme.example
    risk_tier: high
  - subject: "agent:research-*"
    tenant: acme
    owner: bob@acme.example
    risk_tier: low
`

// inventoryRules are the rules on the agent inventory.
var inventoryRules = []string{"agent-unregistered", "high-risk-agent-denied-burst"}

// TestReplayAgreesWithTheLiveCorrelatorOnTheInventory: the live
// correlator, reading the inventory itself, and a replay of what the
// collector stored (the agent_* columns; the replay has no inventory of
// its own) raise the same inventory alerts, ids and evidence alike: an
// unknown agent, an agent registered in one tenant acting in another,
// and the denials of a high-risk agent.
func TestReplayAgreesWithTheLiveCorrelatorOnTheInventory(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Run(t)
	addr, _ := chtest.Server(t)
	ch := chtest.Open(t, addr)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	invFile := filepath.Join(t.TempDir(), "inventory.yml")
	if err := os.WriteFile(invFile, []byte(agents), 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var ids event.IDSource
	var sent []*event.Event
	publish := func(tenant, actor string, effect event.Effect) {
		at := start.Add(time.Duration(len(sent)) * time.Second)
		e := &event.Event{V: event.Version, ID: ids.New(at), Kind: event.KindDecision, Time: at, Tenant: tenant,
			Instance: "enf-1", Seq: uint64(len(sent) + 1),
			Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: actor}}},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "search"},
			Decision: &event.Decision{Effect: effect, PolicyID: "p", RuleID: "r"}}
		data, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		subj, _ := subject.For(e.Tenant, string(e.Kind))
		if _, err := js.Publish(ctx, subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, e)
	}
	publish("acme", "agent:research-web", event.EffectAllow) // registered in acme
	publish("acme", "agent:rogue", event.EffectAllow)        // unknown
	publish("acme", "agent:rogue", event.EffectAllow)        // not new again
	publish("evil", "agent:research-web", event.EffectAllow) // acme's name, another tenant
	for range 3 {
		publish("acme", "agent:planner", event.EffectDeny) // high risk, denied
	}
	publish("acme", "agent:research-web", event.EffectDeny)

	col := collector.Defaults()
	col.NATSURL, col.ClickHouse.Addr, col.ClickHouse.Database = stream.URLs(srv.URL()), chstore.AddrList(addr), ch.Database()
	col.BatchWait = 50 * time.Millisecond
	col.Inventory.File = invFile
	run(t, func(ctx context.Context) (runner, error) {
		return collector.New(ctx, col, slog.New(slog.DiscardHandler))
	})
	cor := correlator.Defaults()
	cor.NATSURL, cor.ClickHouse.Addr, cor.ClickHouse.Database = stream.URLs(srv.URL()), chstore.AddrList(addr), ch.Database()
	cor.BatchWait, cor.Instance = 50*time.Millisecond, "correlator:live"
	cor.Inventory.File = invFile
	run(t, func(ctx context.Context) (runner, error) {
		return correlator.New(ctx, cor, slog.New(slog.DiscardHandler))
	})

	// The live alerts, as the correlator published them.
	var live []*event.Event
	poll.Until(t, 30*time.Second, func() error {
		live = live[:0]
		for _, e := range natstest.AllEvents(t, srv.URL(), "rampart.v1.*.alert") {
			if slices.Contains(inventoryRules, e.Alert.RuleID) {
				live = append(live, e)
			}
		}
		if len(live) < 3 {
			return fmt.Errorf("%d inventory alerts live, want 3", len(live))
		}
		return nil
	})
	// Everything stored, the alerts too.
	poll.Until(t, 30*time.Second, func() error {
		got, err := ch.Query(ctx, "SELECT count() FROM "+ch.Database()+".events WHERE kind = 'decision'")
		if err != nil {
			return err
		}
		if got[0][0] != fmt.Sprint(len(sent)) {
			return fmt.Errorf("%s decisions stored, want %d", got[0][0], len(sent))
		}
		return nil
	})

	var replayed []*event.Event
	r := chstore.Range{From: start, To: start.Add(time.Hour)}
	if _, err := replay.Run(ctx, ch, replay.Options{Range: r, Rules: detect.Shipped()}, func(a *event.Event) error {
		if slices.Contains(inventoryRules, a.Alert.RuleID) {
			replayed = append(replayed, a)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	finding := func(a *event.Event) string {
		var group []string
		for _, g := range a.Alert.Group {
			group = append(group, g.Value)
		}
		return fmt.Sprintf("%s %s %v %v", a.Tenant, a.Alert.RuleID, group, a.Alert.Evidence)
	}
	summary := func(alerts []*event.Event) []string {
		var out []string
		for _, a := range alerts {
			out = append(out, a.ID+" "+finding(a))
		}
		slices.Sort(out)
		return out
	}
	want := []string{ // by rule and tenant: what must be found
		"acme agent-unregistered [agent:rogue] [" + sent[1].ID + "]",
		"evil agent-unregistered [agent:research-web] [" + sent[3].ID + "]",
		"acme high-risk-agent-denied-burst [agent:planner alice@acme.example] [" + sent[4].ID + " " + sent[5].ID + " " + sent[6].ID + "]",
	}
	gotLive, gotReplay := summary(live), summary(replayed)
	if !slices.Equal(gotLive, gotReplay) {
		t.Fatalf("live\n %q\nreplay\n %q", gotLive, gotReplay)
	}
	var found []string
	for _, a := range live {
		found = append(found, finding(a))
	}
	for _, w := range want {
		if !slices.Contains(found, w) {
			t.Errorf("no alert %q in\n %q", w, found)
		}
	}
	if len(gotLive) != len(want) {
		t.Errorf("%d inventory alerts, want %d: %q", len(gotLive), len(want), gotLive)
	}
}

type runner interface {
	Run(context.Context) error
	Close()
}

// run starts a component until the test ends.
func run(t *testing.T, start func(context.Context) (runner, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
}
