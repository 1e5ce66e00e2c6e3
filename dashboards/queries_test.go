package dashboards_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/dashboards/build"
	"github.com/rampart-io/rampart/dashboards/expand"
)

// result is what one engine returned for one query.
type result struct {
	names, types []string
	rows         [][]string
}

func (r result) col(t *testing.T, name string) int {
	t.Helper()
	i := slices.Index(r.names, name)
	if i < 0 {
		t.Fatalf("no column %q in %v", name, r.names)
	}
	return i
}

// sum adds up a numeric column.
func (r result) sum(t *testing.T, name string) int {
	t.Helper()
	i, n := r.col(t, name), 0
	for _, row := range r.rows {
		v, err := strconv.Atoi(row[i])
		if err != nil {
			t.Fatalf("%s = %q: %v", name, row[i], err)
		}
		n += v
	}
	return n
}

// where returns the rows whose column name holds value.
func (r result) where(t *testing.T, name, value string) [][]string {
	t.Helper()
	i := r.col(t, name)
	var out [][]string
	for _, row := range r.rows {
		if row[i] == value {
			out = append(out, row)
		}
	}
	return out
}

// engine runs expanded SQL in the fixture's database.
type engine struct {
	name string
	run  func(ctx context.Context, sql string) (result, error)
}

func (f *fixture) engines(t *testing.T) []engine {
	t.Helper()
	ctx := context.Background()
	// The datasource's defaultDatabase: queries name tables unqualified.
	if err := f.chdb.Exec(ctx, "USE "+f.chdbDB); err != nil {
		t.Fatal(err)
	}
	server := engine{name: "clickhouse-18.16", run: f.serverResult}
	chdb := engine{name: "chdb", run: func(ctx context.Context, sql string) (result, error) {
		rows, err := f.chdb.Query(ctx, sql)
		if err != nil {
			return result{}, err
		}
		desc, err := f.chdb.Query(ctx, "DESCRIBE ("+sql+")")
		if err != nil {
			return result{}, err
		}
		var r result
		for _, d := range desc {
			r.names, r.types = append(r.names, d[0]), append(r.types, d[1])
		}
		r.rows = rows
		return r, nil
	}}
	return []engine{chdb, server}
}

func numeric(typ string) bool {
	typ = strings.TrimPrefix(strings.TrimSuffix(typ, ")"), "Nullable(")
	return strings.HasPrefix(typ, "UInt") || strings.HasPrefix(typ, "Int") || strings.HasPrefix(typ, "Float") || strings.HasPrefix(typ, "Decimal")
}

// checkShape: the columns a panel type needs. A time series frame is
// built from a long table (sqlds' long-to-wide): the time first and
// ascending, string columns as labels, at least one number.
func checkShape(t *testing.T, p build.Panel, r result) {
	t.Helper()
	if len(r.names) == 0 {
		t.Fatal("no columns")
	}
	switch {
	case p.Format == build.FormatTimeSeries:
		if !strings.HasPrefix(r.types[0], "DateTime") {
			t.Errorf("time series: first column %s is %s, want a DateTime", r.names[0], r.types[0])
		}
		nums := 0
		for i, typ := range r.types[1:] {
			switch {
			case numeric(typ):
				nums++
			case typ != "String":
				t.Errorf("time series: column %s is %s: neither a value nor a label", r.names[i+1], typ)
			}
		}
		if nums == 0 {
			t.Errorf("time series without a numeric column: %v %v", r.names, r.types)
		}
		if !slices.IsSortedFunc(r.rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) }) {
			t.Errorf("time series rows are not in time order")
		}
	case p.Type == "stat":
		if len(r.rows) != 1 || !numeric(r.types[0]) {
			t.Errorf("stat: want one numeric row, got %v %v", r.types, r.rows)
		}
	}
}

// scenario is one choice of variable values.
type scenario struct {
	name string
	// set holds the selected values; a variable not named is All (or, for
	// one without All, its first option).
	set map[string][]string
}

// resolveVars fills each variable in order from its own query on e, as
// Grafana does (refresh on time range change), then selects s's values.
func resolveVars(t *testing.T, ctx context.Context, e engine, b build.Board, s scenario, r expand.Request) map[string]expand.Var {
	t.Helper()
	vars := map[string]expand.Var{}
	for _, v := range b.Variables {
		r.Vars = vars
		sql, err := expand.Query(v.SQL, r)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		res, err := e.run(ctx, sql)
		if err != nil {
			t.Fatalf("variable %s on %s: %v\n%s", v.Name, e.name, err, sql)
		}
		var opts []string
		for _, row := range res.rows {
			opts = append(opts, row[0])
		}
		if len(opts) == 0 {
			t.Fatalf("variable %s: no options on %s\n%s", v.Name, e.name, sql)
		}
		cur := expand.Var{Options: opts, Multi: v.Multi}
		switch sel, ok := s.set[v.Name]; {
		case ok:
			for _, x := range sel {
				if !slices.Contains(opts, x) {
					t.Fatalf("variable %s: %q is not among its options %v", v.Name, x, opts)
				}
			}
			cur.Values = sel
		case v.IncludeAll:
			cur.Values = []string{expand.AllValue}
		default:
			cur.Values = opts[:1]
		}
		vars[v.Name] = cur
	}
	return vars
}

// only18Fails says why ClickHouse 18.16 cannot run a panel's query, or "".
// The plugin's $__timeInterval writes toStartOfInterval, which 18.16 does
// not have (the plugin itself supports ClickHouse 22.7 and later); such a
// panel must fail there for exactly that reason.
func only18Fails(p build.Panel) string {
	if strings.Contains(p.SQL, "$__timeInterval(") {
		return "toStartOfInterval"
	}
	return ""
}

// TestQueries runs every ClickHouse query of every panel, variable and
// alert rule, expanded as Grafana and the plugin expand it, on chDB and on
// ClickHouse 18.16 against the fixture, and checks each result's columns
// and rows.
func TestQueries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	engines := f.engines(t)
	expect := f.expectations()
	seen := map[string]bool{}
	for _, b := range build.Boards() {
		for _, s := range f.scenarios(b.UID) {
			results := map[string]result{}
			for _, e := range engines {
				req := expand.Request{From: f.from, To: f.to, Interval: 10 * time.Second}
				req.Vars = resolveVars(t, ctx, e, b, s, req)
				for _, p := range b.Panels {
					if p.Source() != build.ClickHouseUID {
						continue
					}
					key := b.UID + "/" + p.Title + "/" + s.name
					t.Run(key+"/"+e.name, func(t *testing.T) {
						sql, err := expand.Query(p.SQL, req)
						if err != nil {
							t.Fatal(err)
						}
						res, err := e.run(ctx, sql)
						if why := only18Fails(p); why != "" && e.name != "chdb" {
							if err == nil || !strings.Contains(err.Error(), why) {
								t.Fatalf("18.16 should refuse it for %s, got %v", why, err)
							}
							return
						}
						if err != nil {
							t.Fatalf("%v\n%s", err, sql)
						}
						checkShape(t, p, res)
						check, ok := expect[key]
						if !ok {
							t.Fatalf("no expectation for %s", key)
						}
						seen[key] = true
						check(t, res)
						if other, ok := results[p.Title]; ok && !slices.EqualFunc(other.rows, res.rows, slices.Equal) {
							t.Errorf("the engines disagree:\nchdb  %v\n18.16 %v", other.rows, res.rows)
						}
						results[p.Title] = res
					})
				}
			}
		}
	}
	for _, r := range build.Rules() {
		if r.SQL == "" {
			continue
		}
		key := "rule/" + r.UID
		var first *result
		for _, e := range engines {
			t.Run(key+"/"+e.name, func(t *testing.T) {
				now := time.Now()
				sql, err := expand.Query(r.SQL, expand.Request{From: now.Add(-time.Duration(r.Window) * time.Second), To: now, Interval: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				res, err := e.run(ctx, sql)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				// Grafana alerting reads a table as one series per row: string
				// columns are its labels, the one numeric column its value.
				nums := 0
				for i, typ := range res.types {
					switch {
					case numeric(typ):
						nums++
					case typ != "String":
						t.Errorf("column %s is %s: neither a label nor the value", res.names[i], typ)
					}
				}
				if nums != 1 {
					t.Errorf("%d numeric columns, want one value per row: %v", nums, res.types)
				}
				check, ok := expect[key]
				if !ok {
					t.Fatalf("no expectation for %s", key)
				}
				seen[key] = true
				check(t, res)
				if first != nil && !slices.EqualFunc(first.rows, res.rows, slices.Equal) {
					t.Errorf("the engines disagree:\n%v\n%v", first.rows, res.rows)
				}
				first = &res
			})
		}
	}
	for key := range expect {
		if !seen[key] {
			t.Errorf("expectation %s matched no query", key)
		}
	}
}
