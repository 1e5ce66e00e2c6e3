package chstore_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestUnregisteredAgentsOnBothEngines: agents an inventory did not know
// are listed, registered ones and rows stored without an inventory are
// not; the agent columns round-trip on both engines.
func TestUnregisteredAgentsOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)
	events := fixture() // actor agent:sub throughout; acme 0-4, o'brien\co 5-6
	var rows [][]any
	for i, e := range events {
		a := ddl.Agent{Inventory: "v1"}
		switch {
		case i == 0: // stored before any inventory
			a = ddl.Agent{}
		case e.Tenant == "acme" && i%2 == 0:
			a = ddl.Agent{Owner: "bob", Team: "research", RiskTier: "low", Environment: "prod", Registered: true, Inventory: "v1"}
		}
		rows = append(rows, ddl.Values(ddl.Events, &ddl.Row{Event: e, StreamSeq: e.Seq, CollectedAt: t0, Agent: a}))
	}
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"acme", "agent:sub", "", "2", "2026-11-28 10:00:00", "2026-11-28 10:00:02"},
		{"o'brien\\co", "agent:sub", "", "2", "2026-11-28 10:00:03", "2026-11-28 10:00:03"},
	}
	registered := [][]string{{"bob", "research", "low", "prod", "1", "v1", "2"}}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		got, err := eng.conn.Query(ctx, forensic.UnregisteredAgents(eng.db, t0, t0.Add(time.Hour)))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: unregistered agents\n got %q\nwant %q", eng.name, got, want)
		}
		got, err = eng.conn.Query(ctx, "SELECT agent_owner, agent_team, agent_risk_tier, agent_environment, agent_registered, agent_inventory, count() FROM "+eng.db+
			".events WHERE agent_registered = 1 GROUP BY agent_owner, agent_team, agent_risk_tier, agent_environment, agent_registered, agent_inventory")
		if err != nil || !reflect.DeepEqual(got, registered) {
			t.Errorf("%s: registered rows %q %v, want %q", eng.name, got, err, registered)
		}
	}
}
