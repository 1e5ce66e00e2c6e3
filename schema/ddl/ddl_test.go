package ddl

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestMigrationsAreUniqueAndParse(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("%d migrations", len(ms))
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			if strings.Contains(s, ";") || !strings.Contains(s, "{db}.") {
				t.Errorf("migration %d: statement not split or not database-qualified: %q", m.Version, s)
			}
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment\nCREATE TABLE a (\n  x UInt8\n);\n\nCREATE VIEW b AS SELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a (\n  x UInt8\n)", "CREATE VIEW b AS SELECT 1", "SELECT 2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestValidDatabase(t *testing.T) {
	for name, ok := range map[string]bool{"rampart": true, "_r2": true, "": false, "1abc": false, "a;drop": false, "a.b": false, "a`b": false} {
		if err := ValidDatabase(name); (err == nil) != ok {
			t.Errorf("ValidDatabase(%q) = %v", name, err)
		}
	}
}

// dayConn answers the list of days with days and records every Exec.
type dayConn struct {
	days  [][]string
	execs []string
}

func (c *dayConn) Exec(_ context.Context, q string) error { c.execs = append(c.execs, q); return nil }
func (c *dayConn) Query(_ context.Context, q string) ([][]string, error) {
	if strings.Contains(q, "toDate(event_time)") {
		return c.days, nil
	}
	return nil, nil
}

func TestEachDayRunsOncePerStoredDay(t *testing.T) {
	ctx := context.Background()
	stmt := "INSERT INTO db.t (x) SELECT 1 FROM db.events_raw WHERE kind = 'decision' AND " + EachDay
	c := &dayConn{days: [][]string{{"2026-11-01"}, {"2026-11-02"}}}
	got, err := eachDay(ctx, c, "db", stmt)
	want := []string{
		"INSERT INTO db.t (x) SELECT 1 FROM db.events_raw WHERE kind = 'decision' AND (event_time >= toDateTime('2026-11-01 00:00:00') AND event_time < toDateTime('2026-11-02 00:00:00'))",
		"INSERT INTO db.t (x) SELECT 1 FROM db.events_raw WHERE kind = 'decision' AND (event_time >= toDateTime('2026-11-02 00:00:00') AND event_time < toDateTime('2026-11-03 00:00:00'))",
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q (%v)", got, err)
	}
	// The next day by the calendar, across a month's end.
	if got, err := eachDay(ctx, &dayConn{days: [][]string{{"2026-11-30"}}}, "db", stmt); err != nil || len(got) != 1 ||
		!strings.HasSuffix(got[0], "event_time < toDateTime('2026-12-01 00:00:00'))") {
		t.Fatalf("month's end: %q (%v)", got, err)
	}
	if got, err := eachDay(ctx, &dayConn{}, "db", stmt); err != nil || len(got) != 0 {
		t.Fatalf("empty table: %q (%v), want no statement", got, err)
	}
	if got, err := eachDay(ctx, c, "db", "CREATE TABLE db.x (a UInt8)"); err != nil || len(got) != 1 {
		t.Fatalf("no placeholder: %q (%v)", got, err)
	}
	// What the server prints is spliced into SQL: anything but a day is refused.
	if _, err := eachDay(ctx, &dayConn{days: [][]string{{"2026-11-01') OR (1"}}}, "db", stmt); err == nil {
		t.Fatal("a row that is not a day was spliced in")
	}
}
