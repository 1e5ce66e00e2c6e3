package chstore_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// alertFixture is an alert as a correlator publishes it: at the time of
// the event that completed it, with its evidence.
func alertFixture(id, tenant, instance string, seq uint64) *event.Event {
	first := t0.Add(1500 * time.Microsecond)
	return &event.Event{V: event.Version, ID: id, Kind: event.KindAlert, Time: t0.Add(2 * time.Second), Tenant: tenant,
		Instance: instance, Epoch: "01EPOCH", Seq: seq, RequestID: "req-2",
		Identity: &event.Identity{Subject: "user:alice", SessionID: "s-1"},
		Alert: &event.Alert{RuleID: "probing", Title: "Tool probing after denials", Severity: event.SeverityHigh,
			Tags: []string{"owasp-agentic:T2", "maestro:L3"}, Group: []event.GroupValue{{Field: "session_id", Value: "s-1"}, {Field: "tool", Value: "o'brien"}},
			First: first, Last: t0.Add(2 * time.Second), Count: 3, Evidence: []string{"ev-1", "ev-2", "ev-3"}}}
}

// TestAlertsViewOneRowPerAlert: the alerts view shows each alert once on
// both engines, however often it was stored — a redelivered batch, or the
// same finding re-published by another correlator (same id, same time, so
// the same sort key) — with its columns as the correlator published them,
// and no other kind of event.
func TestAlertsViewOneRowPerAlert(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)

	var rows [][]any
	for _, e := range fixture() {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	a := alertFixture("01ALERT000000000000000000A", "acme", "corr-1", 1)
	b := alertFixture("01ALERT000000000000000000B", "o'brien\\co", "corr-1", 2)
	b.Alert.Severity, b.Alert.Group, b.Alert.Tags = event.SeverityLow, nil, nil
	again := alertFixture(a.ID, "acme", "corr-2", 7) // re-published after a handover
	rows = append(rows, ddl.EventRow(a, 100, t0), ddl.EventRow(b, 101, t0), ddl.EventRow(a, 100, t0), ddl.EventRow(again, 140, t0.Add(time.Minute)))
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}

	const cols = "alert_id, tenant, rule_id, title, severity, tags, group_fields, group_values, first_at, first_at_us, last_at, last_at_us, matched, evidence, event_time, event_time_us"
	want := [][]string{
		{a.ID, "acme", "probing", "Tool probing after denials", "high", "['owasp-agentic:T2','maestro:L3']", "['session_id','tool']", `['s-1','o\'brien']`,
			"2026-11-28 10:00:00", "1795860000001500", "2026-11-28 10:00:02", "1795860002000000", "3", "['ev-1','ev-2','ev-3']", "2026-11-28 10:00:02", "1795860002000000"},
		{b.ID, "o'brien\\co", "probing", "Tool probing after denials", "low", "[]", "[]", "[]",
			"2026-11-28 10:00:00", "1795860000001500", "2026-11-28 10:00:02", "1795860002000000", "3", "['ev-1','ev-2','ev-3']", "2026-11-28 10:00:02", "1795860002000000"},
	}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		got, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.alerts ORDER BY alert_id", cols, eng.db))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: alerts\n got %q\nwant %q", eng.name, got, want)
		}
		// The re-published copy is the one shown: the newest insert wins.
		inst, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT instance, count() FROM %s.alerts WHERE alert_id = '%s' GROUP BY instance", eng.db, a.ID))
		if err != nil || len(inst) != 1 || inst[0][1] != "1" {
			t.Errorf("%s: alert %s shown as %q (%v), want once", eng.name, a.ID, inst, err)
		}
		// rule_id stays the policy's: no alert is counted as a decision's rule.
		rules, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.events WHERE rule_id = 'probing' OR (kind = 'alert' AND rule_id != '')", eng.db))
		if err != nil || rules[0][0] != "0" {
			t.Errorf("%s: alerts in rule_id: %q %v", eng.name, rules, err)
		}
	}
}

// TestUnresolvedEvidenceOnBothEngines: evidence that names no stored
// event, or only another tenant's, is listed; evidence of the alert's own
// tenant is not, even when another tenant holds the same id too.
func TestUnresolvedEvidenceOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)
	events := fixture() // acme: 0-4, o'brien\co: 5-6
	acme, other := events[0].ID, events[5].ID
	ok := alertFixture("01ALERT000000000000000000A", "acme", "corr-1", 1)
	ok.Alert.Evidence = []string{acme, events[1].ID}
	bad := alertFixture("01ALERT000000000000000000B", "acme", "corr-1", 2)
	bad.Alert.Evidence = []string{acme, "01NOTSTORED", other}
	shared := *events[6] // the id of an acme event, in another tenant too
	shared.ID = acme
	var rows [][]any
	for _, e := range append(events, ok, bad, &shared) {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	rows = append(rows, ddl.EventRow(bad, 2, t0)) // stored twice: listed once
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"corr-1", "01EPOCH", "2", bad.ID, "acme", "probing", "01NOTSTORED", ""},
		{"corr-1", "01EPOCH", "2", bad.ID, "acme", "probing", other, "o'brien\\co"},
	}
	slices.SortFunc(want, func(a, b []string) int { return strings.Compare(a[6], b[6]) })
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		got, err := eng.conn.Query(ctx, forensic.UnresolvedEvidence(eng.db, "1"))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: unresolved evidence\n got %q\nwant %q", eng.name, got, want)
		}
		none, err := eng.conn.Query(ctx, forensic.UnresolvedEvidence(eng.db, "event_id = "+forensic.Quote(ok.ID)))
		if err != nil || len(none) != 0 {
			t.Errorf("%s: the resolved alert alone: %q %v", eng.name, none, err)
		}
	}
}

// TestAlertsAndTheirEvidenceOnBothEngines: forensic.Alerts lists alerts
// most severe first, each once; forensic.AlertEvidence gives one alert's
// evidence in the order it happened, only of the alert's tenant, even when
// another tenant stores an event under a cited id.
func TestAlertsAndTheirEvidenceOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)
	events := fixture() // acme: 0-4, o'brien\co: 5-6
	high := alertFixture("01ALERT000000000000000000A", "acme", "corr-1", 1)
	high.Alert.Evidence = []string{events[4].ID, events[1].ID} // cited out of order
	low := alertFixture("01ALERT000000000000000000B", "acme", "corr-1", 2)
	low.Alert.Severity, low.Alert.RuleID = event.SeverityLow, "new-actor"
	shared := *events[6] // another tenant's event under a cited id
	shared.ID = events[4].ID
	var rows [][]any
	for _, e := range append(events, high, low, &shared) {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	rows = append(rows, ddl.EventRow(high, 1, t0)) // stored twice: listed once
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		alerts, err := eng.conn.Query(ctx, forensic.Alerts(eng.db))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		var got [][]string
		for _, a := range alerts {
			got = append(got, []string{a[1], a[2], a[3], a[5], a[6], a[7], a[8]})
		}
		want := [][]string{
			{"acme", "high", "probing", "session_id=s-1, tool=o'brien", "3", events[4].ID + "," + events[1].ID, high.ID},
			{"acme", "low", "new-actor", "session_id=s-1, tool=o'brien", "3", "ev-1,ev-2,ev-3", low.ID},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: alerts\n got %q\nwant %q", eng.name, got, want)
		}
		evidence, err := eng.conn.Query(ctx, forensic.AlertEvidence(eng.db, "acme", high.ID))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		var ids []string
		for _, r := range evidence {
			ids = append(ids, r[10])
			if r[3] != "s-1" {
				t.Errorf("%s: evidence of another session or tenant: %q", eng.name, r)
			}
		}
		if want := []string{events[1].ID, events[4].ID}; !slices.Equal(ids, want) {
			t.Errorf("%s: evidence %q, want %q in time order", eng.name, ids, want)
		}
	}
}
