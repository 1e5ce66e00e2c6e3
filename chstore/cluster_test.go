package chstore_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chclustertest"
)

// schemaOf is every table of db on one server, one row each: name,
// engine, then its columns in order, what the cluster form must make the
// same on every replica.
func schemaOf(t *testing.T, c *chstore.Client) [][]string {
	t.Helper()
	ctx := context.Background()
	tables, err := c.Query(ctx, fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = '%s' ORDER BY name", c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	// system.columns lists each table's columns in their order.
	cols, err := c.Query(ctx, fmt.Sprintf("SELECT table, name, type FROM system.columns WHERE database = '%s'", c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	for i, tb := range tables {
		for _, col := range cols {
			if col[0] == tb[0] {
				tables[i] = append(tables[i], col[1]+" "+col[2])
			}
		}
	}
	return tables
}

// On a cluster every table is replicated with a Distributed table beside
// it, every view exists on every replica, and migrating again, through
// either replica, applies nothing.
func TestClusterMigrationsOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	cl := chclustertest.New(t)
	replicas := cl.Open(t)

	first := schemaOf(t, replicas[0])
	if second := schemaOf(t, replicas[1]); !slices.EqualFunc(first, second, slices.Equal) {
		t.Fatalf("replicas disagree:\n%v\n%v", first, second)
	}
	engines := map[string]string{}
	for _, r := range first {
		engines[r[0]] = r[1]
	}
	for table, engine := range map[string]string{
		"schema_migrations": "ReplicatedReplacingMergeTree",
		"events_raw":        "ReplicatedReplacingMergeTree", "events_raw" + ddl.DistributedSuffix: "Distributed",
		"sessions_raw": "ReplicatedReplacingMergeTree", "sessions_raw" + ddl.DistributedSuffix: "Distributed",
		"event_keys": "ReplicatedReplacingMergeTree", "event_keys" + ddl.DistributedSuffix: "Distributed",
		"decisions_by_day": "ReplicatedAggregatingMergeTree", "decisions_by_day" + ddl.DistributedSuffix: "Distributed",
		"events": "View", "sessions": "View", "alerts": "View", "credentials": "View",
		"event_keys_mv": "MaterializedView", "decisions_by_day_mv": "MaterializedView",
	} {
		if engines[table] != engine {
			t.Errorf("%s: engine %q, want %q", table, engines[table], engine)
		}
	}
	// A Distributed table has its table's columns, added ones too.
	cols := map[string][]string{}
	for _, r := range first {
		cols[r[0]] = r[2:]
	}
	if !slices.Equal(cols["events_raw"], cols["events_raw"+ddl.DistributedSuffix]) {
		t.Errorf("events_raw_all's columns differ from events_raw's:\n%v\n%v", cols["events_raw"+ddl.DistributedSuffix], cols["events_raw"])
	}
	// What replica 1 reads as applied is what replica 0 recorded, once
	// replication has brought it over.
	if err := replicas[1].Exec(ctx, "SYSTEM SYNC REPLICA "+replicas[1].Database()+".schema_migrations"); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		again, err := r.Migrate(ctx)
		if err != nil || len(again) != 0 {
			t.Fatalf("migrate again applied %v, err %v; want nothing", again, err)
		}
	}
}

func TestConfigNamesReplicasAndCluster(t *testing.T) {
	for name, tc := range map[string]struct {
		addr, cluster, http string
		ok                  bool
	}{
		"http replicas":              {"ch-1:9000,ch-2:9000", "rampart", "ch-1:8123, ch-2:8123", true},
		"an http replica lacks port": {"ch-1:9000,ch-2:9000", "rampart", "ch-1:8123,ch-2", false},
		"an empty http replica":      {"ch-1:9000,ch-2:9000", "rampart", "ch-1:8123,", false},
		"one server":                 {"127.0.0.1:9000", "", "", true},
		"replicas in order":          {"ch-1:9000, ch-2:9000", "rampart", "", true},
		"a replica lacks port":       {"ch-1:9000,ch-2", "rampart", "", false},
		"an empty replica":           {"ch-1:9000,", "rampart", "", false},
		"cluster not a name":         {"ch-1:9000", "a;DROP", "", false},
		"an IPv6 replica":            {"[::1]:9000,127.0.0.1:9000", "", "[::1]:8123", true},
		"no host":                    {":9000", "", "", false},
		"no http host":               {"ch-1:9000", "", ":8123", false},
		"a port not a number":        {"ch-1:abc", "", "", false},
		"a port out of range":        {"ch-1:65536", "", "", false},
		"port zero":                  {"ch-1:0", "", "", false},
		"a host with a space":        {"ch 1:9000", "", "", false},
		"a replica named twice":      {"ch-1:9000,ch-2:9000, ch-1:9000", "rampart", "", false},
		"an http replica twice":      {"ch-1:9000", "", "ch-1:8123,ch-1:8123", false},
		"more replicas than allowed": {strings.Repeat("ch:9000,", 64) + "ch-65:9000", "rampart", "", false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := chstore.Defaults()
			cfg.Addr, cfg.Cluster, cfg.HTTPAddr = chstore.AddrList(tc.addr), tc.cluster, chstore.AddrList(tc.http)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	cfg := chstore.Defaults()
	cfg.Addr = "ch-1:9000, ch-2:9000"
	if got := cfg.Addrs(); !slices.Equal(got, []string{"ch-1:9000", "ch-2:9000"}) {
		t.Fatalf("Addrs = %q", got)
	}
	cfg.HTTPAddr = "ch-1:8123, ch-2:8123"
	if got := cfg.HTTPAddrs(); !slices.Equal(got, []string{"ch-1:8123", "ch-2:8123"}) {
		t.Fatalf("HTTPAddrs = %q", got)
	}
}

// The RowBinary insert over HTTP fails over as the native one does: with
// replica 0 killed mid-stream, every batch lands through replica 1, each
// once, and both replicas hold every event once after replica 0 is back.
func TestClusterHTTPInsertFailsOver(t *testing.T) {
	ctx := context.Background()
	cl := chclustertest.New(t)
	replicas := cl.Open(t)
	db := replicas[0].Database()
	cfg := cl.Config(0, db) // replica 1 the fallback, for both protocols
	ins, err := chstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ins.Close() })

	var ids event.IDSource
	seq := 0
	batch := func() []byte {
		var body []byte
		for range 50 {
			seq++
			e := &event.Event{V: event.Version, ID: ids.New(time.Now()), Kind: event.KindDecision, Time: time.Now(),
				Tenant: "acme", Instance: "enf-1", Seq: uint64(seq), RequestID: fmt.Sprint(seq),
				Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r"}}
			body = ddl.AppendRowBinary(body, ddl.Events, &ddl.Row{Event: e, StreamSeq: uint64(seq), CollectedAt: time.Now()})
		}
		return body
	}
	insert := func(n int) {
		t.Helper()
		for range n {
			if err := ins.InsertRowBinary(ctx, "events_raw", ddl.EventColumns, batch()); err != nil {
				t.Fatalf("insert with a replica down: %v", err)
			}
		}
	}
	insert(4)
	cl.Kill(0)
	insert(6) // each refused by replica 0, sent again to replica 1
	if err := cl.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	insert(2) // replica 1 answered last and keeps the inserts
	chclustertest.WaitEvents(t, replicas, seq)
	for i, c := range replicas {
		rows, err := c.Query(ctx, "SELECT count() FROM "+db+".events_raw")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(rows[0][0]); n != seq {
			t.Errorf("replica%d: events_raw holds %d rows for %d events inserted", i+1, n, seq)
		}
	}
}
