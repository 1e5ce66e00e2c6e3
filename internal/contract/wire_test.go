package contract

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/backend"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// TestBackendWireFormsAreSchemas: every name and form the backend module
// writes itself is schema's (or the enforcer's) to the byte.
func TestBackendWireFormsAreSchemas(t *testing.T) {
	if backend.KindBackendRequest != string(event.KindBackendRequest) {
		t.Errorf("kind %q, schema %q", backend.KindBackendRequest, event.KindBackendRequest)
	}
	if backend.RevocationsBucket != stream.Revocations {
		t.Errorf("bucket %q, schema %q", backend.RevocationsBucket, stream.Revocations)
	}
	if backend.HeaderRequestID != enforcer.HeaderRequestID {
		t.Errorf("request id header %q, enforcer %q", backend.HeaderRequestID, enforcer.HeaderRequestID)
	}
	if backend.TokenType != credential.TokenType {
		t.Errorf("token type %q, enforcer %q", backend.TokenType, credential.TokenType)
	}
	if backend.SubjectPrefix != subject.Prefix {
		t.Errorf("subject prefix %q, schema %q", backend.SubjectPrefix, subject.Prefix)
	}
	for _, tenant := range []string{"", "acme", "a.b", "*", ">", "~", "é", "a b\x00", strings.Repeat("x", 192), strings.Repeat("x", 193), strings.Repeat(".", 64), strings.Repeat(".", 65)} {
		want, werr := subject.For(tenant, string(event.KindBackendRequest))
		got, ok := backend.Subject(tenant)
		if ok != (werr == nil) || ok && got != want {
			t.Errorf("subject of tenant %q: %q %v, schema %q %v", tenant, got, ok, want, werr)
		}
		for _, task := range []string{"", "t-1", "a.b", "é/=+"} {
			if got, want := backend.TaskRevocationKey(tenant, task), stream.TaskRevocationKey(tenant, task); got != want {
				t.Errorf("task key (%q, %q): %q, schema %q", tenant, task, got, want)
			}
		}
		if got, want := backend.JTIRevocationKey(tenant), stream.JTIRevocationKey(tenant); got != want {
			t.Errorf("jti key %q: %q, schema %q", tenant, got, want)
		}
	}
}

// TestBackendEventIsASchemaEvent: the backend's event, as it marshals it,
// decodes strictly (no field schema lacks) into a valid event of kind
// backend_request with every field where schema keeps it.
func TestBackendEventIsASchemaEvent(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 0, 0, 123456000, time.UTC)
	b := backend.Event{V: 1, ID: "01JDXK0000000000000000000D", Kind: backend.KindBackendRequest, Time: at, Tenant: "acme",
		Instance: "backend:files", Seq: 1, RequestID: "01REQ",
		Identity: &backend.EventIdentity{Subject: "user:alice", Issuer: "https://rampart.test", SPIFFEID: "spiffe://acme/enforcer",
			Chain: []backend.Actor{{Subject: "agent:planner"}, {Subject: "agent:sub", Issuer: "https://idp"}}, SessionID: "s-1", TaskID: "t-1"},
		Request: &backend.EventRequest{Method: "GET", Host: "files", Path: "/read"},
		Backend: &backend.EventBackend{JTI: "jti-1", Audience: "https://files", Client: "127.0.0.1:1", Status: 401, Code: backend.CodeCredentialRevoked}}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var strict event.Event
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&strict); err != nil {
		t.Fatalf("a field of the backend's event is not schema's: %v", err)
	}
	got, err := event.Decode(data)
	if err != nil {
		t.Fatalf("the backend's event does not decode: %v", err)
	}
	want := &event.Event{V: 1, ID: b.ID, Kind: event.KindBackendRequest, Time: at, Tenant: "acme", Instance: "backend:files", Seq: 1,
		RequestID: "01REQ",
		Identity: &event.Identity{Subject: "user:alice", Issuer: "https://rampart.test", SPIFFEID: "spiffe://acme/enforcer",
			Chain: []event.Actor{{Subject: "agent:planner"}, {Subject: "agent:sub", Issuer: "https://idp"}}, SessionID: "s-1", TaskID: "t-1"},
		Request: &event.Request{Method: "GET", Host: "files", Path: "/read"},
		Backend: &event.Backend{JTI: "jti-1", Audience: "https://files", Client: "127.0.0.1:1", Status: 401, Code: "credential_revoked"}}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("decoded\n %s\nwant\n %s", g, w)
	}
	// Every field schema's Backend has, the backend's has too.
	if n, m := reflect.TypeFor[event.Backend]().NumField(), reflect.TypeFor[backend.EventBackend]().NumField(); n != m {
		t.Errorf("schema's Backend has %d fields, the backend's %d", n, m)
	}
}
