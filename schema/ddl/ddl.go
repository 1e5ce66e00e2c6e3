// Package ddl holds Rampart's ClickHouse schema: ordered, versioned
// migrations and the migrator that applies them, and the one definition of
// the events table's columns (Events) with their codec, from which the
// collector's inserts, every read back, and the chain's canonical form
// derive. It speaks to ClickHouse only through the small Conn interface,
// so the schema module (which enforcers import) never links a ClickHouse
// client. Every statement runs unchanged on ClickHouse 18.16 and on
// current ClickHouse (26.x); on a cluster, each runs in its cluster form
// (cluster.go), derived from the same migrations.
package ddl

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Conn is what the migrator needs from a ClickHouse engine.
type Conn interface {
	// Exec runs one statement that returns no rows.
	Exec(ctx context.Context, query string) error
	// Query runs one statement and returns its rows as text.
	Query(ctx context.Context, query string) ([][]string, error)
}

//go:embed migrations/*.sql
var files embed.FS

// Migration is one versioned step of the schema.
type Migration struct {
	Version    int
	Name       string
	Statements []string // with {db} still in place
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns every migration in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(files, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("ddl: bad migration file name %q", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(files, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: m[2], Statements: splitStatements(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	// Numbers may be reserved for migrations still being written (a gap
	// below the newest): Migrate applies whatever is not yet recorded, so
	// one that lands later still runs. Each number is used once.
	for i, m := range out {
		if m.Version < 1 || i > 0 && m.Version == out[i-1].Version {
			return nil, fmt.Errorf("ddl: migration version %d used twice or below 1", m.Version)
		}
	}
	return out, nil
}

// splitStatements splits on semicolons that end a line and drops comment lines.
func splitStatements(body string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

var dbName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidDatabase reports whether name is safe to splice into DDL.
func ValidDatabase(name string) error {
	if !dbName.MatchString(name) {
		return fmt.Errorf("ddl: invalid database name %q (want [A-Za-z_][A-Za-z0-9_]*)", name)
	}
	return nil
}

// Migrate brings database db up to the newest version and returns the
// versions it applied. Applied versions are recorded in
// db.schema_migrations; running it again applies nothing.
func Migrate(ctx context.Context, c Conn, db string) ([]int, error) {
	return MigrateTo(ctx, c, db, 0)
}

// MigrateTo is Migrate up to and including version upTo (0: the newest):
// tests use it to build a database as an older release left it, then
// upgrade it in place.
func MigrateTo(ctx context.Context, c Conn, db string, upTo int) ([]int, error) {
	return MigrateCluster(ctx, c, db, "", upTo)
}

// MigrateCluster is MigrateTo on the named cluster: each statement in its
// cluster form (see clusterForm), schema_migrations replicated like the
// rest, so every node sees what was applied. An empty cluster is a single
// server, exactly as Migrate.
func MigrateCluster(ctx context.Context, c Conn, db, cluster string, upTo int) ([]int, error) {
	if err := ValidDatabase(db); err != nil {
		return nil, err
	}
	var form *clusterForm
	if cluster != "" {
		if err := ValidCluster(cluster); err != nil {
			return nil, err
		}
		form = newClusterForm(cluster)
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	if err := bootstrap(ctx, c, db, cluster); err != nil {
		return nil, err
	}
	done, err := Applied(ctx, c, db)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range ms {
		stmts, err := m.forCluster(form, db)
		if err != nil {
			return applied, fmt.Errorf("ddl: migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if done[m.Version] || upTo > 0 && m.Version > upTo {
			continue
		}
		for i, s := range stmts {
			if done, err := columnExists(ctx, c, s); err != nil {
				return applied, fmt.Errorf("ddl: migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			} else if done {
				continue
			}
			pieces, err := eachDay(ctx, c, db, s)
			if err != nil {
				return applied, fmt.Errorf("ddl: migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
			for _, p := range pieces {
				if err := c.Exec(ctx, p); err != nil {
					return applied, fmt.Errorf("ddl: migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
		}
		// INSERT ... SELECT: inline VALUES stall on 18.16 over the native protocol.
		rec := fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, applied_at) SELECT %d, '%s', now()", db, m.Version, m.Name)
		if err := c.Exec(ctx, rec); err != nil {
			return applied, fmt.Errorf("ddl: record migration %d: %w", m.Version, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// forCluster returns m's statements for db, in their cluster form when
// form is set. Every migration passes through form, applied or not, so it
// knows each table the schema made replicated.
func (m Migration) forCluster(form *clusterForm, db string) ([]string, error) {
	var out []string
	for _, s := range m.Statements {
		s = strings.ReplaceAll(s, "{db}", db)
		if form == nil {
			out = append(out, s)
			continue
		}
		rewritten, err := form.rewrite(s)
		if err != nil {
			return nil, err
		}
		out = append(out, rewritten...)
	}
	if form != nil {
		out = append(out, form.endMigration()...)
	}
	return out, nil
}

// bootstrap creates the database and schema_migrations. On a cluster it
// does so only when schema_migrations is missing here: ON CLUSTER waits for
// every node, and a component starting while a replica is down must not
// wait for it when there is nothing to migrate.
func bootstrap(ctx context.Context, c Conn, db, cluster string) error {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version",
	}
	if cluster != "" {
		rows, err := c.Query(ctx, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s' AND name = 'schema_migrations'", db))
		if err != nil {
			return fmt.Errorf("ddl: bootstrap: %w", err)
		}
		if len(rows) == 1 && rows[0][0] != "0" {
			return nil
		}
		on := " ON CLUSTER " + cluster
		stmts = []string{
			stmts[0] + on,
			"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations" + on +
				" (version UInt32, name String, applied_at DateTime) ENGINE = ReplicatedReplacingMergeTree('" +
				ZooKeeperPath(db, "schema_migrations") + "', '{replica}') ORDER BY version",
		}
	}
	for _, s := range stmts {
		if err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("ddl: bootstrap: %w", err)
		}
	}
	return nil
}

// EachDay in a statement makes it run once per day of events stored in
// events_raw, standing for that day's condition on event_time. A backfill
// written with it holds one day's groups in memory rather than the whole
// table's: at 100M events the whole table's needed more than a 4 GB
// max_memory_usage, and they grow with the history. On an empty table the
// statement does not run at all.
const EachDay = "{each_day}"

// eachDay returns stmt as the statements to run: itself, or one per day
// stored in db.events_raw when it holds EachDay. Days are literals the
// server printed, in order, so a rerun after an interruption repeats the
// same pieces (the backfills it serves are idempotent).
func eachDay(ctx context.Context, c Conn, db, stmt string) ([]string, error) {
	if !strings.Contains(stmt, EachDay) {
		return []string{stmt}, nil
	}
	rows, err := c.Query(ctx, "SELECT DISTINCT toString(toDate(event_time)) AS d FROM "+db+".events_raw ORDER BY d")
	if err != nil {
		return nil, fmt.Errorf("list days to backfill: %w", err)
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		var day time.Time
		if len(r) == 1 {
			day, err = time.Parse(time.DateOnly, r[0])
		}
		if len(r) != 1 || err != nil {
			return nil, fmt.Errorf("list days to backfill: unexpected row %q", r)
		}
		// A range on event_time itself, which 18.16 matches against the
		// sort key (toDate(event_time) = ... reads the whole table), from
		// midnight to the next midnight in the server's time zone, as
		// toDate counted them, whatever the day's length.
		cond := fmt.Sprintf("event_time >= toDateTime('%s 00:00:00') AND event_time < toDateTime('%s 00:00:00')",
			day.Format(time.DateOnly), day.AddDate(0, 0, 1).Format(time.DateOnly))
		out = append(out, strings.ReplaceAll(stmt, EachDay, "("+cond+")"))
	}
	return out, nil
}

var addColumn = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\s+(?:ON\s+CLUSTER\s+[A-Za-z0-9_]+\s+)?ADD\s+COLUMN\s+([A-Za-z0-9_]+)\s`)

// columnExists reports whether stmt adds a single column that is already
// there, which makes re-running an interrupted migration harmless on
// engines without ADD COLUMN IF NOT EXISTS.
func columnExists(ctx context.Context, c Conn, stmt string) (bool, error) {
	m := addColumn.FindStringSubmatch(stmt)
	if m == nil {
		return false, nil
	}
	rows, err := c.Query(ctx, fmt.Sprintf("SELECT count() FROM system.columns WHERE database = '%s' AND table = '%s' AND name = '%s'", m[1], m[2], m[3]))
	if err != nil {
		return false, err
	}
	return len(rows) == 1 && rows[0][0] != "0", nil
}

// Applied returns the set of migration versions recorded in db.
func Applied(ctx context.Context, c Conn, db string) (map[int]bool, error) {
	rows, err := c.Query(ctx, "SELECT DISTINCT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("ddl: read applied migrations: %w", err)
	}
	done := make(map[int]bool, len(rows))
	for _, r := range rows {
		v, err := strconv.Atoi(r[0])
		if err != nil {
			return nil, fmt.Errorf("ddl: bad version %q in schema_migrations", r[0])
		}
		done[v] = true
	}
	return done, nil
}
