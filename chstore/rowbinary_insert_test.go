package chstore_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// The collector's RowBinary insert stores every column exactly as the
// native insert does, and a body cut short stores nothing. HTTP only: chDB
// has no HTTP interface, and the collector inserts natively without one.
func TestRowBinaryInsertStoresWhatTheNativeInsertDoes(t *testing.T) {
	ctx := context.Background()
	addr, _ := chtest.Server(t)
	native, binary := chtest.Open(t, addr), chtest.Open(t, addr)
	if binary.HTTPAddr() == "" {
		t.Fatal("the RowBinary insert needs the server's HTTP address (RAMPART_CLICKHOUSE_HTTP_ADDR with RAMPART_CLICKHOUSE_ADDR)")
	}
	l := chain.NewLinker("enf-1", "epoch-1")
	collected := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	var values [][]any
	var body []byte
	for i, e := range fixture() {
		e.Request.Headers = map[string]string{"user-agent": "agent-sdk/1.2", "x-client": "a, b"}
		l.Link(e)
		r := &ddl.Row{Event: e, StreamSeq: uint64(i + 1), CollectedAt: collected, Agent: ddl.Agent{Owner: "o'brien", Registered: true, Inventory: "v1"}}
		values = append(values, ddl.Values(ddl.Events, r))
		body = ddl.AppendRowBinary(body, ddl.Events, r)
	}
	if err := native.Insert(ctx, "events_raw", ddl.EventColumns, values); err != nil {
		t.Fatal(err)
	}
	if err := binary.InsertRowBinary(ctx, "events_raw", ddl.EventColumns, body); err != nil {
		t.Fatal(err)
	}
	all := func(c interface {
		Query(context.Context, string) ([][]string, error)
		Database() string
	}) [][]string {
		rows, err := c.Query(ctx, "SELECT "+strings.Join(ddl.EventColumns, ", ")+" FROM "+c.Database()+".events_raw ORDER BY event_id")
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	want, got := all(native), all(binary)
	if len(want) != len(values) || !reflect.DeepEqual(got, want) {
		t.Fatalf("RowBinary insert stored\n%v\nnative stored\n%v", got, want)
	}

	// Blocks split anywhere, mid-row too, go in as the one body would.
	split := chtest.Open(t, addr)
	third := len(body) / 3
	if err := split.InsertRowBinaryBlocks(ctx, "events_raw", ddl.EventColumns, [][]byte{body[:third], {}, body[third : 2*third+1], body[2*third+1:]}); err != nil {
		t.Fatal(err)
	}
	if got := all(split); !reflect.DeepEqual(got, want) {
		t.Fatalf("RowBinary blocks stored\n%v\nnative stored\n%v", got, want)
	}

	cut := chtest.Open(t, addr)
	if err := cut.InsertRowBinary(ctx, "events_raw", ddl.EventColumns, body[:len(body)-3]); err == nil {
		t.Fatal("a body cut short mid-row was accepted")
	}
	if rows := all(cut); len(rows) != 0 {
		t.Fatalf("a refused insert stored %d rows", len(rows))
	}
	if err := cut.InsertRowBinaryBlocks(ctx, "events_raw", ddl.EventColumns, [][]byte{body[:third], body[third : len(body)-3]}); err == nil {
		t.Fatal("blocks cut short mid-row were accepted")
	}
	if rows := all(cut); len(rows) != 0 {
		t.Fatalf("refused blocks stored %d rows", len(rows))
	}
}
