package ddl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The cluster form of the schema: the same migrations, each statement
// rewritten for a ClickHouse cluster (remote_servers <cluster>, macros
// {shard} and {replica}, ZooKeeper), so a migration written for one server
// needs no second version. Rewritten on ClickHouse 18.16's terms:
//
//   - CREATE DATABASE, CREATE TABLE, CREATE [MATERIALIZED] VIEW and DROP
//     TABLE run ON CLUSTER: every node runs them from the distributed DDL
//     queue, and the statement returns once all have (so a migration needs
//     every node up).
//   - ALTER TABLE ... ADD COLUMN on a replicated table runs on the node
//     the migrator is connected to: replication carries it to the shard's
//     other replicas (on any other table it runs ON CLUSTER).
//   - A <Kind>MergeTree(args) table becomes Replicated<Kind>MergeTree with
//     its ZooKeeper path and replica name first,
//     ('/clickhouse/tables/{shard}/<db>/<table>', '{replica}', args...).
//     The database and table are spelled out: 18.16 has no {database} or
//     {table} macros.
//   - Beside each such table, <table>_all: a Distributed table over every
//     shard's replicas. A migration that adds columns to the table
//     re-creates it at its end: it holds no data, and 18.16 refuses ALTER
//     ... ON CLUSTER on a table that is not replicated when the shard is.
//   - INSERT ... SELECT (a backfill) runs once, on the node the migrator
//     is connected to: its target is replicated, so replication carries the
//     rows to the other replicas, and with one shard that node holds every
//     source row.
//
// Any other statement has no cluster form and fails the migration, so a
// new kind of statement cannot slip onto a cluster half-applied.
//
// Current ClickHouse accepts all of this too; it could also take
// ReplicatedMergeTree without arguments (default_replica_path with
// {database}/{table}/{uuid}) and ADD COLUMN IF NOT EXISTS, neither of
// which 18.16 has.

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidCluster reports whether name is a cluster name safe to splice into
// DDL.
func ValidCluster(name string) error {
	if !clusterName.MatchString(name) {
		return fmt.Errorf("ddl: invalid cluster name %q (want [A-Za-z_][A-Za-z0-9_]*)", name)
	}
	return nil
}

// DistributedSuffix names a replicated table's Distributed table.
const DistributedSuffix = "_all"

// ZooKeeperPath is where a replicated table keeps its replicas' state.
func ZooKeeperPath(db, table string) string {
	return "/clickhouse/tables/{shard}/" + db + "/" + table
}

var (
	createDatabase = regexp.MustCompile(`(?is)^(CREATE\s+DATABASE\s+IF\s+NOT\s+EXISTS\s+[A-Za-z0-9_]+)$`)
	createTable    = regexp.MustCompile(`(?is)^(CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z0-9_]+)\.([A-Za-z0-9_]+))(\s.*)$`)
	createView     = regexp.MustCompile(`(?is)^(CREATE\s+(?:MATERIALIZED\s+)?VIEW\s+IF\s+NOT\s+EXISTS\s+[A-Za-z0-9_]+\.[A-Za-z0-9_]+)(\s.*)$`)
	alterAdd       = regexp.MustCompile(`(?is)^(ALTER\s+TABLE\s+([A-Za-z0-9_]+)\.([A-Za-z0-9_]+))(\s+ADD\s+COLUMN\s.*)$`)
	dropTable      = regexp.MustCompile(`(?is)^(DROP\s+TABLE\s+IF\s+EXISTS\s+([A-Za-z0-9_]+)\.([A-Za-z0-9_]+))$`)
	insertSelect   = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+[A-Za-z0-9_]+\.[A-Za-z0-9_]+\s*\([^)]*\)\s*SELECT\s`)
	mergeTree      = regexp.MustCompile(`(?is)\bENGINE\s*=\s*([A-Za-z]*)MergeTree(\s*\(([^)]*)\))?`)
)

// clusterForm rewrites statements for a cluster. It remembers which tables
// it made replicated, so ALTER and DROP reach their Distributed tables
// too: feed it every migration's statements in order, applied or not.
type clusterForm struct {
	cluster    string
	replicated map[string]bool // db.table
	// altered are the replicated tables the current migration added
	// columns to, in order, whose Distributed tables it re-creates.
	altered []string
}

func newClusterForm(cluster string) *clusterForm {
	return &clusterForm{cluster: cluster, replicated: map[string]bool{}}
}

// distributed creates db.table's Distributed table.
func (f *clusterForm) distributed(db, table string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s ON CLUSTER %s AS %s.%s ENGINE = Distributed(%s, %s, %s)",
		db, table, DistributedSuffix, f.cluster, db, table, f.cluster, db, table)
}

// endMigration returns what the migration's end must run: the
// Distributed tables of the tables it altered, re-created with their
// columns.
func (f *clusterForm) endMigration() []string {
	var out []string
	for _, name := range f.altered {
		db, table, _ := strings.Cut(name, ".")
		out = append(out, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s ON CLUSTER %s", db, table, DistributedSuffix, f.cluster),
			f.distributed(db, table))
	}
	f.altered = nil
	return out
}

// rewrite returns the cluster form of one statement ({db} substituted).
func (f *clusterForm) rewrite(stmt string) ([]string, error) {
	on := " ON CLUSTER " + f.cluster
	if m := createDatabase.FindStringSubmatch(stmt); m != nil {
		return []string{m[1] + on}, nil
	}
	if m := createTable.FindStringSubmatch(stmt); m != nil {
		db, table := m[2], m[3]
		body, err := replicatedEngine(m[4], db, table)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", db, table, err)
		}
		f.replicated[db+"."+table] = true
		return []string{m[1] + on + body, f.distributed(db, table)}, nil
	}
	if m := createView.FindStringSubmatch(stmt); m != nil {
		return []string{m[1] + on + m[2]}, nil
	}
	if m := alterAdd.FindStringSubmatch(stmt); m != nil {
		name := m[2] + "." + m[3]
		if !f.replicated[name] {
			return []string{m[1] + on + m[4]}, nil
		}
		// A replicated table's ALTER replicates itself through ZooKeeper
		// and returns once every active replica has applied it. ON CLUSTER
		// would also have each replica race to run it, which 18.16's DDL
		// worker loses under load ("Node exists" on the shard's executed
		// node, the statement then hanging until it times out).
		if !slices.Contains(f.altered, name) {
			f.altered = append(f.altered, name)
		}
		return []string{stmt}, nil
	}
	if m := dropTable.FindStringSubmatch(stmt); m != nil {
		out := []string{m[1] + on}
		if name := m[2] + "." + m[3]; f.replicated[name] {
			out = append([]string{m[1] + DistributedSuffix + on}, out...)
			delete(f.replicated, name)
			f.altered = slices.DeleteFunc(f.altered, func(s string) bool { return s == name })
		}
		return out, nil
	}
	if insertSelect.MatchString(stmt) {
		return []string{stmt}, nil
	}
	first, _, _ := strings.Cut(strings.TrimSpace(stmt), "\n")
	return nil, fmt.Errorf("ddl: no cluster form for statement %q", first)
}

// replicatedEngine rewrites the ENGINE clause of a CREATE TABLE's body.
func replicatedEngine(body, db, table string) (string, error) {
	locs := mergeTree.FindAllStringSubmatchIndex(body, -1)
	if len(locs) != 1 {
		return "", fmt.Errorf("ddl: no cluster form for an engine outside the MergeTree family")
	}
	m := locs[0]
	kind := body[m[2]:m[3]]
	if strings.HasPrefix(strings.ToLower(kind), "replicated") {
		return "", fmt.Errorf("ddl: a migration names a Replicated engine itself; the cluster form makes it so")
	}
	args := []string{"'" + ZooKeeperPath(db, table) + "'", "'{replica}'"}
	if m[6] >= 0 {
		if a := strings.TrimSpace(body[m[6]:m[7]]); a != "" {
			args = append(args, a)
		}
	}
	engine := fmt.Sprintf("ENGINE = Replicated%sMergeTree(%s)", kind, strings.Join(args, ", "))
	return body[:m[0]] + engine + body[m[1]:], nil
}
