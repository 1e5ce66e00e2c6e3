// Command rampart-forensic measures the forensic queries on generated
// history: it fills a fresh database on ClickHouse 18.16 (a private server,
// or -clickhouse) and on chDB (current ClickHouse) with -events events,
// redelivers a few of them so unmerged copies exist as they do in
// production, then runs every question -runs times through the old views
// (the baseline) and through the queries Rampart runs now, checks the two
// give the same answer, and prints rows read and time p50/p99 per engine.
// `make bench-forensic` runs it on 10M events.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/loadtest/history"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
)

// beforeForensic is the last migration before the forensic tables.
const beforeForensic = 10

// engine is one ClickHouse to measure.
type engine interface {
	ddl.Conn
	QueryCounted(ctx context.Context, query string) ([][]string, uint64, error)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rampart-forensic:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		events   = flag.Uint64("events", 10_000_000, "events to generate")
		runs     = flag.Int("runs", 20, "times each query runs (p50/p99 over them)")
		engines  = flag.String("engines", "clickhouse-18,chdb", "engines to measure, comma-separated")
		addr     = flag.String("clickhouse", "", "ClickHouse native address; empty starts a private clickhouse-server")
		httpAddr = flag.String("clickhouse-http", "", "ClickHouse HTTP address (the generator's inserts), with -clickhouse")
		baseline = flag.Bool("baseline", true, "also measure the questions as the old views answered them")
		keep     = flag.Bool("keep", false, "keep the database (and a private server running until interrupted)")
		redeliv  = flag.Int("redeliver", 1, "events in a thousand inserted twice, unmerged")
		inflight = flag.Int("inflight", 2, "generator inserts in flight at once")
		batch    = flag.Int("batch", 200_000, "events in one generator insert")
		genOnly  = flag.Bool("generate-only", false, "generate, report events/s and stop (no upgrade, no queries)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := history.Config{Events: *events}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	db := fmt.Sprintf("forensic_%d", *events)
	var results []result
	for _, name := range strings.Split(*engines, ",") {
		var (
			e   engine
			ins func(db string) history.Inserter
			err error
		)
		switch name {
		case "clickhouse-18":
			var c *chstore.Client
			var done func()
			c, done, err = openServer(ctx, *addr, *httpAddr, *keep)
			if err != nil {
				return err
			}
			defer done()
			e, ins = c, func(db string) history.Inserter { return c.WithDatabase(db) }
		case "chdb":
			var c *chdbtest.Engine
			c, err = chdbtest.Open()
			if err != nil {
				return err
			}
			e, ins = c, func(db string) history.Inserter { return c.RowBinary(db) }
		default:
			return fmt.Errorf("unknown engine %q (clickhouse-18, chdb)", name)
		}
		gen := generator{ins: ins(db), opts: history.Options{BatchRows: *batch, Inflight: *inflight}}
		r, err := measure(ctx, name, e, db, cfg, gen, *runs, *baseline, *redeliv, *genOnly)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r...)
		if !*keep {
			_ = e.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		}
	}
	print(os.Stdout, results)
	if *keep {
		fmt.Println("database", db, "kept; interrupt to stop")
		<-ctx.Done()
	}
	return nil
}

// openServer connects to addr, or starts a private server.
func openServer(ctx context.Context, addr, httpAddr string, keep bool) (*chstore.Client, func(), error) {
	done := func() {}
	if addr == "" {
		dir, err := os.MkdirTemp("", "rampart-forensic-")
		if err != nil {
			return nil, nil, err
		}
		srv, err := chserver.Start(ctx, dir)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(os.Stderr, "clickhouse-server 18.16 at %s (http %s), data in %s\n", srv.Addr, srv.HTTPAddr, dir)
		addr, httpAddr = srv.Addr, srv.HTTPAddr
		done = func() {
			srv.Stop()
			if !keep {
				os.RemoveAll(dir)
			}
		}
	}
	cfg := chstore.Defaults()
	cfg.Addr, cfg.HTTPAddr = chstore.AddrList(addr), chstore.AddrList(httpAddr)
	cfg.DialTimeout = 10 * time.Second
	cfg.ReadTimeout = 2 * time.Hour // the upgrade's backfills
	c, err := chstore.Open(ctx, cfg)
	if err != nil {
		done()
		return nil, nil, err
	}
	return c, func() { c.Close(); done() }, nil
}

// result is one question measured on one engine, one way.
type result struct {
	engine, question, way string
	rowsRead              uint64
	rows                  int
	p50, p99              time.Duration
	agrees                string
}

// generator is where and how the history is written.
type generator struct {
	ins  history.Inserter
	opts history.Options
}

func measure(ctx context.Context, name string, e engine, db string, cfg history.Config, gen generator, runs int, baseline bool, redeliver int, genOnly bool) ([]result, error) {
	_ = e.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	start := time.Now()
	// The history goes into the schema as it was before the forensic
	// tables, which are then built from it by upgrading in place: one
	// INSERT ... SELECT per table is faster than their views firing on
	// every generated block, and it is the path an existing database takes.
	if _, err := ddl.MigrateTo(ctx, e, db, beforeForensic); err != nil {
		return nil, err
	}
	cols, err := tableColumns(ctx, e, db)
	if err != nil {
		return nil, err
	}
	gen.opts.Columns = cols
	start = time.Now()
	var reported uint64
	err = history.Generate(ctx, gen.ins, cfg, gen.opts, func(done, total uint64) {
		if done-reported >= 3_000_000 || done == total {
			reported = done
			fmt.Fprintf(os.Stderr, "%s: %d/%d events, %.0f events/s\n", name, done, total, float64(done)/time.Since(start).Seconds())
		}
	})
	if err != nil {
		return nil, err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "%s: generated %d events in %s: %.0f events/s\n", name, cfg.Calls()*3, el.Round(time.Millisecond), float64(cfg.Calls()*3)/el.Seconds())
	if genOnly {
		return nil, nil
	}
	start = time.Now()
	if _, err := ddl.Migrate(ctx, e, db); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s: upgraded in place (forensic tables filled) in %s\n", name, time.Since(start).Round(time.Millisecond))
	// Copies redelivered now pass through the materialized views too.
	if redeliver > 0 {
		if err := history.Redeliver(ctx, e, db, ddl.EventColumns, redeliver); err != nil {
			return nil, err
		}
	}
	if err := prepare(ctx, e, db); err != nil {
		return nil, err
	}
	k, err := pick(ctx, e, db, cfg)
	if err != nil {
		return nil, err
	}
	var out []result
	for _, q := range questions(k) {
		cur, curRows, err := timeQuery(ctx, e, q.current(db), runs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.name, err)
		}
		cur.engine, cur.question, cur.way = name, q.name, "now"
		if baseline && q.baseline != nil {
			base, baseRows, err := timeQuery(ctx, e, q.baseline(db), max(runs/4, 3))
			if err != nil {
				return nil, fmt.Errorf("%s baseline: %w", q.name, err)
			}
			base.engine, base.question, base.way = name, q.name, "baseline (view, FINAL)"
			cur.agrees = "yes"
			if !reflect.DeepEqual(q.normalize(baseRows), q.normalize(curRows)) {
				cur.agrees = fmt.Sprintf("NO: baseline %d rows, now %d", len(baseRows), len(curRows))
			}
			out = append(out, base)
		}
		out = append(out, cur)
	}
	return out, nil
}

// tableColumns are the columns of ddl.Events that db.events_raw has at
// its migration.
func tableColumns(ctx context.Context, e engine, db string) ([]ddl.Column, error) {
	rows, err := e.Query(ctx, "SELECT name FROM system.columns WHERE database = "+forensic.Quote(db)+" AND table = 'events_raw'")
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, r := range rows {
		has[r[0]] = true
	}
	var cols []ddl.Column
	for _, c := range ddl.Events {
		if has[c.Name] {
			cols = append(cols, c)
		}
	}
	return cols, nil
}

// timeQuery runs q runs times after one warm-up and returns its timings.
func timeQuery(ctx context.Context, e engine, q string, runs int) (result, [][]string, error) {
	rows, _, err := e.QueryCounted(ctx, q)
	if err != nil {
		return result{}, nil, fmt.Errorf("%w\n%s", err, q)
	}
	var times []time.Duration
	var read uint64
	for i := 0; i < runs; i++ {
		t := time.Now()
		_, n, err := e.QueryCounted(ctx, q)
		if err != nil {
			return result{}, nil, err
		}
		times = append(times, time.Since(t))
		read = n
	}
	slices.Sort(times)
	return result{rowsRead: read, rows: len(rows), p50: times[len(times)/2], p99: times[(len(times)*99+99)/100-1]}, rows, nil
}

func print(w *os.File, rs []result) {
	fmt.Fprintf(w, "| engine | question | way | rows read | rows out | p50 | p99 | same answer |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %s | %s | %s |\n", r.engine, r.question, r.way, r.rowsRead, r.rows,
			ms(r.p50), ms(r.p99), r.agrees)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
