package collector_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestRowsCarryTheInventorysAgent: each stored row carries what the
// inventory says of its agent — a registered one's owner and team, an
// unregistered one marked so — and the inventory's version.
func TestRowsCarryTheInventorysAgent(t *testing.T) {
	addr, _ := chtest.Server(t)
	r := newRig(t, addr)
	db := r.ch.Database()
	inv := filepath.Join(t.TempDir(), "inventory.yml")
	if err := os.WriteFile(inv, []byte("agents:\n  - subject: \"agent:research-*\"\n    owner: bob\n    team: research\n    risk_tier: low\n    environment: staging\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cfg.Inventory.File = inv
	for i, actor := range []string{"agent:research-web", "agent:rogue"} {
		at := time.Now()
		e := &event.Event{V: event.Version, ID: r.ids.New(at), Kind: event.KindDecision, Time: at, Tenant: "acme",
			Instance: "enf-test", Seq: uint64(i + 1), Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: actor}}},
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
		data, _ := event.Encode(e)
		subj, _ := subject.For(e.Tenant, string(e.Kind))
		if _, err := r.js.Publish(context.Background(), subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	r.start(t, addr)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events", 2)
	got, err := r.ch.Query(context.Background(), "SELECT actor, agent_owner, agent_team, agent_risk_tier, agent_environment, agent_registered, length(agent_inventory) FROM "+db+".events ORDER BY actor")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"agent:research-web", "bob", "research", "low", "staging", "1", "16"}, {"agent:rogue", "", "", "", "", "0", "16"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows\n got %q\nwant %q", got, want)
	}
}
