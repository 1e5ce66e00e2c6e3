// Package chdbtest gives a test current ClickHouse (26.x) as the embedded
// chDB engine, loaded from libchdb.so ($CHDB_LIB_PATH) without cgo. It lets
// the same DDL and queries that run on the ClickHouse 18.16 server be proven
// on the modern engine too. Importing this package loads the library at
// start, so only tests import it.
package chdbtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	chdb "github.com/chdb-io/chdb-go/chdb-purego"
	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Engine is a chDB connection that implements ddl.Conn.
type Engine struct {
	mu   sync.Mutex
	conn chdb.ChdbConn
}

var (
	once    sync.Once
	shared  *Engine
	openErr error
	counter atomic.Int64
)

// engine opens the process-wide engine: chDB allows one per process.
func engine() (*Engine, error) {
	once.Do(func() {
		dir, err := os.MkdirTemp("", "rampart-chdb-")
		if err != nil {
			openErr = err
			return
		}
		conn, err := chdb.NewConnectionFromConnString(dir)
		if err != nil {
			openErr = fmt.Errorf("chdbtest: open: %w", err)
			return
		}
		shared = &Engine{conn: conn}
	})
	return shared, openErr
}

// Open returns the process-wide engine, for programs (benchmarks) that are
// not tests.
func Open() (*Engine, error) { return engine() }

// New returns the engine and a fresh database name with every migration applied.
func New(t testing.TB) (*Engine, string) {
	t.Helper()
	e, err := engine()
	if err != nil {
		t.Fatalf("chDB required: %v", err)
	}
	db := fmt.Sprintf("rampart_chdb_%d", counter.Add(1))
	if _, err := ddl.Migrate(context.Background(), e, db); err != nil {
		t.Fatalf("chdbtest: migrate: %v", err)
	}
	t.Cleanup(func() { _ = e.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return e, db
}

// Exec runs one statement.
func (e *Engine) Exec(ctx context.Context, query string) error {
	_, err := e.run(query, "TabSeparated")
	return err
}

// Query runs one statement and returns rows formatted like chstore.Client.Query.
func (e *Engine) Query(ctx context.Context, query string) ([][]string, error) {
	out, err := e.run(query, "JSONCompactEachRow")
	if err != nil {
		return nil, err
	}
	return parseRows(out)
}

func parseRows(out string) ([][]string, error) {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var cells []any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&cells); err != nil {
			return nil, fmt.Errorf("chdbtest: decode row %q: %w", line, err)
		}
		row := make([]string, len(cells))
		for i, c := range cells {
			row[i] = format(c)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// QueryCounted is Query that also returns how many rows the engine read
// from storage, from the statistics of the JSONCompact format.
func (e *Engine) QueryCounted(ctx context.Context, query string) ([][]string, uint64, error) {
	out, err := e.run(query, "JSONCompact")
	if err != nil {
		return nil, 0, err
	}
	var res struct {
		Data       [][]any `json:"data"`
		Statistics struct {
			RowsRead uint64 `json:"rows_read"`
		} `json:"statistics"`
	}
	d := json.NewDecoder(strings.NewReader(out))
	d.UseNumber()
	if err := d.Decode(&res); err != nil {
		return nil, 0, fmt.Errorf("chdbtest: decode result: %w", err)
	}
	var rows [][]string
	for _, cells := range res.Data {
		row := make([]string, len(cells))
		for i, c := range cells {
			row[i] = format(c)
		}
		rows = append(rows, row)
	}
	return rows, res.Statistics.RowsRead, nil
}

func format(v any) string {
	if list, ok := v.([]any); ok {
		ss := make([]string, len(list))
		for i, x := range list {
			ss[i] = fmt.Sprint(x)
		}
		return chstore.FormatValue(ss)
	}
	return chstore.FormatValue(v)
}

func (e *Engine) run(query, format string) (string, error) {
	b, err := e.runBytes(query, format)
	return string(b), err
}

func (e *Engine) runBytes(query, format string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	res, err := e.conn.Query(query, format)
	if err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	defer res.Free()
	if err := res.Error(); err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	return bytes.Clone(res.Buf()), nil
}

// Events reads db's events_raw as chstore.Client.ReadEvents reads the
// server's: every stored copy where a condition holds, in RowBinary
// decoded by chstore.DecodeEvents, so a check over stored events runs on
// chDB unchanged.
type Events struct {
	e  *Engine
	db string
}

// Events returns a reader of database db's events.
func (e *Engine) Events(db string) Events { return Events{e: e, db: db} }

// ReadEvents visits each stored row of events_raw where the condition
// holds.
func (x Events) ReadEvents(ctx context.Context, where string, visit func(*event.Event) error) error {
	q := fmt.Sprintf("SELECT %s FROM %s.events_raw WHERE %s", strings.Join(ddl.Names(ddl.EventFields), ", "), x.db, where)
	b, err := x.e.runBytes(q, "RowBinary")
	if err != nil {
		return err
	}
	return chstore.DecodeEvents(bufio.NewReader(bytes.NewReader(b)), visit)
}

var _ ddl.Conn = (*Engine)(nil)

// RowBinary inserts rows encoded in RowBinary into tables of db, as
// chstore.Client.InsertRowBinary does over the server's HTTP interface:
// chDB has none, so each insert goes through a file read by the file()
// table function, holding exactly the bytes the server would take.
type RowBinary struct {
	e  *Engine
	db string
}

// RowBinary is an inserter of RowBinary rows into db.
func (e *Engine) RowBinary(db string) RowBinary { return RowBinary{e: e, db: db} }

// InsertRowBinary inserts rows, the named columns of ddl.Events in order.
func (r RowBinary) InsertRowBinary(ctx context.Context, table string, columns []string, rows []byte) error {
	st, err := structure(columns)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "chdbtest-*.rowbinary")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(rows)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return r.e.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT * FROM file('%s', 'RowBinary', '%s')",
		r.db, table, strings.Join(columns, ", "), f.Name(), st))
}

// structure is the file() structure of the named columns of ddl.Events.
func structure(names []string) (string, error) {
	cols := make([]string, len(names))
	for i, n := range names {
		c, ok := ddl.Lookup(n)
		if !ok {
			return "", fmt.Errorf("chdbtest: no column %s in ddl.Events", n)
		}
		cols[i] = c.Name + " " + c.Type.SQL()
	}
	return strings.Join(cols, ", "), nil
}
