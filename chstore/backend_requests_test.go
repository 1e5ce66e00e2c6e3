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
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestBackendRequestsStoredOnBothEngines: a backend's reports read back
// from the backend_requests view with their fields as reported, once
// however often stored, and a report whose request id names no allowed
// decision with its jti is found by the join the view's comment gives, on
// both engines.
func TestBackendRequestsStoredOnBothEngines(t *testing.T) {
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)

	report := func(eid, req, jti, code string, status int, at time.Duration) *event.Event {
		return &event.Event{V: 1, ID: eid, Kind: event.KindBackendRequest, Time: t0.Add(at), Tenant: "acme",
			Instance: "backend:files", Seq: 1, RequestID: req,
			Identity: &event.Identity{Subject: "user:alice", Issuer: "https://rampart.test", SPIFFEID: "spiffe://acme/enforcer", TaskID: "task-1"},
			Request:  &event.Request{Method: "GET", Host: "files", Path: "/read"},
			Backend:  &event.Backend{JTI: jti, Audience: "https://files", Client: "127.0.0.1:4000", Status: status, Code: code}}
	}
	allowed := &event.Event{V: 1, ID: "01BKDEC0000000000000000001", Kind: event.KindDecision, Time: t0, Tenant: "acme", Instance: "enf-1", Seq: 91,
		RequestID: "req-1", Identity: &event.Identity{Subject: "user:alice", TaskID: "task-1"}, Request: &event.Request{Method: "GET", Path: "/read"},
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", CredentialJTI: "jti-1"}}
	served := report("01BKREQ0000000000000000001", "req-1", "jti-1", "", 200, time.Second)
	bypass := report("01BKREQ0000000000000000002", "", "jti-1", "", 200, 2*time.Second)
	refused := report("01BKREQ0000000000000000003", "req-1", "jti-1", "credential_revoked", 401, 3*time.Second)
	var rows [][]any
	for _, e := range fixture() {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	rows = append(rows, ddl.EventRow(allowed, 300, t0),
		ddl.EventRow(served, 301, t0), ddl.EventRow(served, 301, t0), // redelivered
		ddl.EventRow(bypass, 302, t0), ddl.EventRow(refused, 303, t0))
	if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
	if err := embedded.Exec(ctx, insert); err != nil {
		t.Fatal(err)
	}
	const cols = "event_id, tenant, request_id, jti, audience, client, spiffe_id, status, code, method, path, subject, task_id, instance"
	row := func(e *event.Event) []string {
		return []string{e.ID, "acme", e.RequestID, e.Backend.JTI, "https://files", "127.0.0.1:4000", "spiffe://acme/enforcer",
			fmt.Sprint(e.Backend.Status), e.Backend.Code, "GET", "/read", "user:alice", "task-1", "backend:files"}
	}
	want := [][]string{row(served), row(bypass), row(refused)}
	for _, eng := range []struct {
		name string
		conn ddl.Conn
		db   string
	}{{"clickhouse-18", server, server.Database()}, {"chdb-26", embedded, chdbDB}} {
		got, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.backend_requests ORDER BY event_id", cols, eng.db))
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: backend_requests\n got %q\nwant %q", eng.name, got, want)
		}
		// Served requests without an allowed decision carrying their jti.
		unmatched, err := eng.conn.Query(ctx, fmt.Sprintf(`SELECT b.event_id FROM %[1]s.backend_requests AS b
			LEFT JOIN (SELECT request_id, decision_credential_jti AS jti, 1 AS allowed FROM %[1]s.events WHERE kind = 'decision' AND effect = 'allow') AS d
			USING (request_id, jti) WHERE d.allowed = 0 AND b.status < 400 ORDER BY b.event_id`, eng.db))
		if err != nil || !reflect.DeepEqual(unmatched, [][]string{{bypass.ID}}) {
			t.Errorf("%s: unmatched backend requests %q %v", eng.name, unmatched, err)
		}
		other, err := eng.conn.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.events WHERE kind != 'backend_request' AND (backend_jti != '' OR backend_status != 0)", eng.db))
		if err != nil || other[0][0] != "0" {
			t.Errorf("%s: backend columns on other kinds: %q %v", eng.name, other, err)
		}
	}
}
