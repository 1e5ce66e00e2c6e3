package chstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestEventsTableMatchesMigrations holds the one definition of events_raw
// (ddl.Events) to what the migrations create, on both engines: a column
// migrated but not defined (never written, read or hashed), or defined but
// not migrated (every insert fails), is caught here, as is a type that
// differs. The events view must show the same columns.
func TestEventsTableMatchesMigrations(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)
	want := map[string]string{}
	for _, c := range ddl.Events {
		if _, dup := want[c.Name]; dup {
			t.Errorf("column %s defined twice", c.Name)
		}
		want[c.Name] = c.Type.SQL()
	}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		for _, table := range []string{"events_raw", "events"} {
			rows, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT name, type FROM system.columns WHERE database = '%s' AND table = '%s'", eng.db, table))
			if err != nil {
				t.Fatalf("%s: %v", eng.name, err)
			}
			got := map[string]string{}
			for _, r := range rows {
				got[r[0]] = r[1]
			}
			for name, typ := range want {
				if got[name] != typ {
					t.Errorf("%s: %s.%s is %q in the database, %q in ddl.Events", eng.name, table, name, got[name], typ)
				}
			}
			for name, typ := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s: %s.%s (%s) is migrated but not in ddl.Events", eng.name, table, name, typ)
				}
			}
		}
	}
}
