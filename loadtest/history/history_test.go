package history_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rampart-io/rampart/loadtest/history"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestGeneratedHistoryVerifies writes a small history into ClickHouse
// 18.16, in many small inserts two at a time as the benchmark writes its
// millions, and checks it as `rampart verify` does: every event is
// stored once, in the configured chains, and every chain is intact.
func TestGeneratedHistoryVerifies(t *testing.T) {
	ch := chtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := history.Config{Events: 30_000, Tenants: 3, Instances: 4}
	var last uint64
	err := history.Generate(ctx, ch, cfg, history.Options{BatchRows: 2_000, Inflight: 2}, func(done, total uint64) {
		if done <= last || done > total {
			t.Errorf("progress %d of %d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != 30_000 {
		t.Fatalf("progress ended at %d events, want 30000", last)
	}
	rows, err := ch.Query(ctx, "SELECT count(), uniqExact(event_id), uniqExact(instance), uniqExact(tenant), countIf(kind = 'decision' AND effect = 'deny') > 0 FROM "+ch.Database()+".events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rows[0], []string{"30000", "30000", "4", "3", "1"}; !slices.Equal(got, want) {
		t.Fatalf("count, ids, instances, tenants, any denial = %v, want %v", got, want)
	}
	var links []chain.Link
	if err := ch.ScanLinks(ctx, "1", func(l chain.Link) error { links = append(links, l); return nil }); err != nil {
		t.Fatal(err)
	}
	rep, err := chain.CheckLinks(links, chain.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Events != 30_000 || rep.Chains != 4 {
		t.Fatalf("verify: %d events, %d chains, findings %v (first of %d)", rep.Events, rep.Chains, first(rep.Findings), len(rep.Findings))
	}
}

func first(fs []chain.Finding) []chain.Finding { return fs[:min(len(fs), 3)] }

// discard is an Inserter that keeps nothing: the generator's own cost.
type discard struct{}

func (discard) InsertRowBinary(context.Context, string, []string, []byte) error { return nil }

// BenchmarkGenerate measures building, chaining and encoding events
// without a server: b.N calls' events, per event.
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	cfg := history.Config{Events: uint64(max(b.N, 3))}
	if err := history.Generate(context.Background(), discard{}, cfg, history.Options{}, nil); err != nil {
		b.Fatal(err)
	}
}
