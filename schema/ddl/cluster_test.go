package ddl

import (
	"slices"
	"strings"
	"testing"
)

func TestClusterFormRewrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"database", []string{"CREATE DATABASE IF NOT EXISTS d"}, []string{"CREATE DATABASE IF NOT EXISTS d ON CLUSTER c"}},
		{"plain engine", []string{"CREATE TABLE IF NOT EXISTS d.t (a String) ENGINE = ReplacingMergeTree\nORDER BY a"}, []string{
			"CREATE TABLE IF NOT EXISTS d.t ON CLUSTER c (a String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}')\nORDER BY a",
			"CREATE TABLE IF NOT EXISTS d.t_all ON CLUSTER c AS d.t ENGINE = Distributed(c, d, t)",
		}},
		{"engine arguments kept", []string{"CREATE TABLE IF NOT EXISTS d.s (v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY v"}, []string{
			"CREATE TABLE IF NOT EXISTS d.s ON CLUSTER c (v UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/s', '{replica}', v) ORDER BY v",
			"CREATE TABLE IF NOT EXISTS d.s_all ON CLUSTER c AS d.s ENGINE = Distributed(c, d, s)",
		}},
		{"views on every node", []string{
			"CREATE VIEW IF NOT EXISTS d.v AS SELECT * FROM d.t FINAL",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS d.mv TO d.k AS SELECT a FROM d.t",
		}, []string{
			"CREATE VIEW IF NOT EXISTS d.v ON CLUSTER c AS SELECT * FROM d.t FINAL",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS d.mv ON CLUSTER c TO d.k AS SELECT a FROM d.t",
		}},
		{"added columns re-create the Distributed table once", []string{
			"CREATE TABLE IF NOT EXISTS d.t (a String) ENGINE = MergeTree ORDER BY a",
			"ALTER TABLE d.t ADD COLUMN b String AFTER a",
			"ALTER TABLE d.t ADD COLUMN e String AFTER b",
			"DROP TABLE IF EXISTS d.v",
		}, []string{
			"CREATE TABLE IF NOT EXISTS d.t ON CLUSTER c (a String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY a",
			"CREATE TABLE IF NOT EXISTS d.t_all ON CLUSTER c AS d.t ENGINE = Distributed(c, d, t)",
			"ALTER TABLE d.t ADD COLUMN b String AFTER a",
			"ALTER TABLE d.t ADD COLUMN e String AFTER b",
			"DROP TABLE IF EXISTS d.v ON CLUSTER c",
			"DROP TABLE IF EXISTS d.t_all ON CLUSTER c",
			"CREATE TABLE IF NOT EXISTS d.t_all ON CLUSTER c AS d.t ENGINE = Distributed(c, d, t)",
		}},
		{"a backfill runs once, into a replicated table", []string{"INSERT INTO d.k (a) SELECT a FROM d.t"}, []string{"INSERT INTO d.k (a) SELECT a FROM d.t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Migration{Version: 1, Name: "x", Statements: tc.in}
			got, err := m.forCluster(newClusterForm("c"), "d")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A statement the cluster form does not know fails the migration rather
// than running on one node only.
func TestClusterFormRefusesWhatItCannotReplicate(t *testing.T) {
	for _, stmt := range []string{
		"RENAME TABLE d.a TO d.b",
		"ALTER TABLE d.t DROP COLUMN a",
		"CREATE TABLE IF NOT EXISTS d.m (a String) ENGINE = Memory",
		"CREATE TABLE IF NOT EXISTS d.r (a String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
		"INSERT INTO d.t VALUES ('a')",
		"OPTIMIZE TABLE d.t FINAL",
	} {
		if out, err := newClusterForm("c").rewrite(stmt); err == nil {
			t.Errorf("%q: rewritten to %q, want an error", stmt, out)
		}
	}
}

// Every shipped migration has a cluster form.
func TestEveryMigrationHasAClusterForm(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	form := newClusterForm("rampart")
	for _, m := range ms {
		stmts, err := m.forCluster(form, "rampart")
		if err != nil {
			t.Fatalf("%04d_%s: %v", m.Version, m.Name, err)
		}
		for _, s := range stmts {
			replicates := strings.HasPrefix(s, "INSERT") || strings.HasPrefix(s, "ALTER TABLE rampart.events_raw ADD COLUMN")
			if !replicates && !strings.Contains(s, " ON CLUSTER rampart") {
				t.Errorf("%04d_%s: %q runs on one node only", m.Version, m.Name, s)
			}
		}
	}
}

func TestValidCluster(t *testing.T) {
	for name, ok := range map[string]bool{"rampart": true, "prod_2": true, "": false, "a b": false, "x;DROP": false, "2x": false, "a-b": false} {
		if err := ValidCluster(name); (err == nil) != ok {
			t.Errorf("%q: err %v", name, err)
		}
	}
}
