package chstore_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestCredentialsStoredOnBothEngines: a credential event reads back from
// the credentials view with its fields as minted, once however often it
// was stored, and the decisions naming its jti — and only those — answer
// "what did this credential touch", on both engines.
func TestCredentialsStoredOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)

	id := &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:sub"}}, TaskID: "task-1", SessionID: "s-1"}
	cred := &event.Event{V: 1, ID: "01CRED0000000000000000000A", Kind: event.KindCredential, Time: t0.Add(time.Second), Tenant: "acme",
		Instance: "enf-1", Seq: 90, RequestID: "req-c1", Identity: id,
		Credential: &event.Credential{Action: event.CredentialIssued, JTI: "jti-1", Audience: "https://crm", Scope: []string{"crm.read", "o'brien"},
			KeyID: "kid-1", Expires: t0.Add(301 * time.Second), Reason: "destination crm"}}
	decision := func(eid, req, jti string, at time.Duration) *event.Event {
		return &event.Event{V: 1, ID: eid, Kind: event.KindDecision, Time: t0.Add(at), Tenant: "acme", Instance: "enf-1", Seq: 91, RequestID: req,
			Identity: id, Request: &event.Request{Method: "POST", Path: "/mcp", Tool: "crm_lookup", Destination: "crm"},
			Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", CredentialJTI: jti}}
	}
	var rows [][]any
	for _, e := range fixture() {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	rows = append(rows,
		ddl.EventRow(cred, 200, t0), ddl.EventRow(cred, 200, t0), // redelivered
		ddl.EventRow(decision("01CREDDEC00000000000000001", "req-c1", "jti-1", time.Second), 201, t0),
		ddl.EventRow(decision("01CREDDEC00000000000000002", "req-c2", "jti-1", 2*time.Second), 202, t0),
		ddl.EventRow(decision("01CREDDEC00000000000000003", "req-c3", "jti-2", 3*time.Second), 203, t0),
		ddl.EventRow(decision("01CREDDEC00000000000000004", "req-c4", "", 4*time.Second), 204, t0))
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	const cols = "event_id, tenant, action, jti, audience, scope, key_id, expires_at, expires_at_us, reason, subject, chain_subjects, task_id, session_id, request_id"
	want := [][]string{{cred.ID, "acme", "issued", "jti-1", "https://crm", `['crm.read','o\'brien']`, "kid-1", "2026-11-28 10:05:01", "1795860301000000",
		"destination crm", "user:alice", "['agent:planner','agent:sub']", "task-1", "s-1", "req-c1"}}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		got, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.credentials ORDER BY event_id", cols, eng.db))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: credentials\n got %q\nwant %q", eng.name, got, want)
		}
		touched, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT request_id FROM %s.events WHERE kind = 'decision' AND decision_credential_jti = 'jti-1' ORDER BY event_time_us", eng.db))
		if err != nil || !reflect.DeepEqual(touched, [][]string{{"req-c1"}, {"req-c2"}}) {
			t.Errorf("%s: decisions of jti-1: %q %v", eng.name, touched, err)
		}
		use, err := eng.conn.Query(ctx, forensic.CredentialUse(eng.db, "acme", "jti-1"))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		var ids []string
		for _, r := range use {
			ids = append(ids, r[1]+":"+r[8])
		}
		if want := []string{"credential:req-c1", "decision:req-c1", "decision:req-c2"}; !reflect.DeepEqual(ids, want) {
			t.Errorf("%s: CredentialUse %q, want %q", eng.name, ids, want)
		}
		if other, _ := eng.conn.Query(ctx, forensic.CredentialUse(eng.db, "other", "jti-1")); len(other) != 0 {
			t.Errorf("%s: another tenant's query saw %q", eng.name, other)
		}
		// No other event carries credential columns.
		other, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.events WHERE kind != 'credential' AND (credential_jti != '' OR credential_action != '')", eng.db))
		if err != nil || other[0][0] != "0" {
			t.Errorf("%s: credential columns on other kinds: %q %v", eng.name, other, err)
		}
	}
}
