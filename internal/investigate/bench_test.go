package investigate_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-io/rampart/internal/investigate"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/loadtest/history"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// BenchmarkVerbs answers every `investigate` verb, the chain check of the
// verifying ones included, over a generated history of real chains on
// ClickHouse 18.16 and on chDB: $RAMPART_BENCH_EVENTS events (default
// 1,000,000; BENCHMARKS.md gives 10M), redelivered copies unmerged. The
// keys are the call in the middle of the history, so a session lies
// millions of seqs into its chain.
func BenchmarkVerbs(b *testing.B) {
	events := uint64(1_000_000)
	if s := os.Getenv("RAMPART_BENCH_EVENTS"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatalf("RAMPART_BENCH_EVENTS: %v", err)
		}
		events = n
	}
	cfg := history.Config{Events: events}
	cfg.SetDefaults()
	ctx := context.Background()

	server := chtest.New(b)
	embedded, chdbDB := chdbtest.New(b)
	for _, e := range []struct {
		name string
		ins  history.Inserter
		q    investigate.Querier
		ev   verify.EventReader
		exec history.Execer
		db   string
	}{
		{"clickhouse-18", server, server, server, server, server.Database()},
		{"chdb-26", embedded.RowBinary(chdbDB), embedded, embedded.Events(chdbDB), embedded, chdbDB},
	} {
		start := time.Now()
		if err := history.Generate(ctx, e.ins, cfg, history.Options{}, nil); err != nil {
			b.Fatalf("%s: %v", e.name, err)
		}
		b.Logf("%s: %d events generated in %s", e.name, cfg.Calls()*3, time.Since(start).Round(time.Millisecond))
		// One event in a thousand stored twice and left unmerged, as a
		// collector that died between insert and ack leaves it.
		if err := history.Redeliver(ctx, e.exec, e.db, ddl.EventColumns, 1); err != nil {
			b.Fatal(err)
		}
		call := cfg.Calls() / 2
		tenant, session := cfg.Session(call)
		day := cfg.Time(call).Truncate(24 * time.Hour)
		rows, err := e.q.Query(ctx, "SELECT any(actor), any(subject) FROM "+e.db+".events_raw WHERE tenant = "+
			forensic.Quote(tenant)+" AND session_id = "+forensic.Quote(session))
		if err != nil {
			b.Fatal(err)
		}
		actor, principal := rows[0][0], rows[0][1]
		st, v := investigate.New(e.q, e.db), verifier{e.ev}
		for _, verb := range []struct {
			name string
			run  func() (*investigate.Report, error)
		}{
			{"session", func() (*investigate.Report, error) { return st.Session(ctx, v, tenant, session) }},
			{"task", func() (*investigate.Report, error) { return st.Task(ctx, v, tenant, cfg.Task(call)) }},
			{"request", func() (*investigate.Report, error) { return st.Request(ctx, cfg.Request(call)) }},
			{"agent-day", func() (*investigate.Report, error) { return st.Agent(ctx, tenant, actor, day, day.Add(24*time.Hour)) }},
			{"blast-radius-agent-day", func() (*investigate.Report, error) { return st.BlastRadius(ctx, tenant, actor, day) }},
			{"blast-radius-principal-all", func() (*investigate.Report, error) { return st.BlastRadius(ctx, tenant, principal, cfg.Start) }},
		} {
			b.Run(e.name+"/"+verb.name, func(b *testing.B) {
				for b.Loop() {
					rep, err := verb.run()
					if err != nil {
						b.Fatal(err)
					}
					if rep.Verified != nil && rep.Verified.Events == 0 {
						b.Fatal("the chain check read no events")
					}
				}
			})
		}
	}
}
