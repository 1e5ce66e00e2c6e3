package chstore_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// What `rampart verify` reads back must hash exactly as the enforcer
// chained it, for every kind of event and every field.
func TestStoredEventsKeepTheirChainHash(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	l := chain.NewLinker("enf-1", "epoch-1")
	want := map[string]chain.Hash{}
	var rows [][]any
	for i, e := range fixture() {
		e.Time = e.Time.Add(time.Duration(i) * 1234 * time.Nanosecond) // sub-microsecond parts are dropped by Link
		e.Identity.SPIFFEID = "spiffe://acme.example/agent"
		e.Identity.Chain[0].Issuer = "https://idp"
		e.Request.Args = json.RawMessage(`{"q":"o'brien \\ \"x\""}`)
		e.Trace = event.Trace{TraceParent: "00-abc-def-01", TraceState: "k=v"}
		e.Request.Destination, e.Request.DataClass = "external-email", "confidential"
		e.Request.Query, e.Request.Resource = "a=1&b=%20", "file:///reports/q3.md"
		e.Request.Headers = map[string]string{"user-agent": "agent-sdk/1.2", "x-client": "a, b"}
		if e.Decision != nil {
			e.Decision.Shadow = []string{"audit-egress", "audit-pii"}
		}
		l.Link(e)
		want[e.ID] = chain.Of(e)
		rows = append(rows, ddl.EventRow(e, uint64(i+1), time.Now()))
	}
	// A minted credential and the decision that named it (the v5 form).
	cred := &event.Event{V: 1, ID: "01CREDENTIAL0000000000000Z", Kind: event.KindCredential, Time: t0.Add(time.Second), Tenant: "acme", RequestID: "req-9",
		Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: "agent:planner"}}, TaskID: "task-1", SessionID: "s-1"},
		Credential: &event.Credential{Action: event.CredentialIssued, JTI: "jti-o'brien", Audience: "https://crm", Scope: []string{"crm.read", "crm.write"},
			KeyID: "kid-1", Expires: t0.Add(301 * time.Second), Reason: "destination crm"}}
	dec := &event.Event{V: 1, ID: "01CREDDECISION00000000000Z", Kind: event.KindDecision, Time: t0.Add(time.Second), Tenant: "acme", RequestID: "req-9",
		Identity: cred.Identity, Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", CredentialJTI: "jti-o'brien"}}
	// A backend's report of a request it refused (the v6 form).
	refused := &event.Event{V: 1, ID: "01BACKENDREQUEST000000000Z", Kind: event.KindBackendRequest, Time: t0.Add(2 * time.Second), Tenant: "acme", RequestID: "req-9",
		Identity: &event.Identity{Subject: "user:alice", SPIFFEID: "spiffe://acme/enforcer", TaskID: "task-1"}, Request: &event.Request{Method: "GET", Host: "crm", Path: "/o'brien"},
		Backend: &event.Backend{JTI: "jti-o'brien", Audience: "https://crm", Client: "[::1]:4000", Status: 401, Code: "credential_revoked"}}
	for i, e := range []*event.Event{dec, cred, refused} {
		l.Link(e)
		want[e.ID] = chain.Of(e)
		rows = append(rows, ddl.EventRow(e, uint64(50+i), time.Now()))
	}
	cp := &event.Event{V: 1, ID: "01CHECKPOINT0000000000000Z", Time: t0}
	l.Checkpoint(cp, chain.Signer{KeyID: "k", Key: priv}, []uint64{3, 4})
	want[cp.ID] = chain.Of(cp)
	rows = append(rows, ddl.EventRow(cp, 99, time.Now()))
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}

	var got, scanned []*event.Event
	if err := ch.ReadEvents(ctx, "instance = 'enf-1'", func(e *event.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := ch.ScanEvents(ctx, "instance = 'enf-1'", func(e *event.Event) error { scanned = append(scanned, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(scanned) != len(want) {
		t.Fatalf("read %d events natively and %d over HTTP, want %d", len(got), len(scanned), len(want))
	}
	got = append(got, scanned...)
	for _, e := range got {
		if chain.Of(e) != want[e.ID] {
			j, _ := json.Marshal(e)
			t.Errorf("event %s hashes differently after storage: %s", e.ID, j)
		}
	}
	if rep := chain.Check(scanned, chain.Options{}); !rep.Clean() || rep.Checkpoints != 1 {
		t.Fatalf("stored chain does not check clean: %+v", rep)
	}
}
