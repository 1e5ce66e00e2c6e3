package event_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

func backendReport() *event.Event {
	return &event.Event{V: 1, ID: "01JDXK0000000000000000000D", Kind: event.KindBackendRequest, Time: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC),
		Tenant: "acme", Instance: "backend:files", Seq: 1, RequestID: "01REQ",
		Identity: &event.Identity{Subject: "user:alice", TaskID: "t-1"}, Request: &event.Request{Method: "GET", Host: "files", Path: "/read"},
		Backend: &event.Backend{JTI: "j", Audience: "https://files", Client: "127.0.0.1:1", Status: 401, Code: "credential_revoked"}}
}

// TestBackendRequestValidate: a backend_request event needs its backend
// section and an HTTP status; a valid one decodes as it was encoded.
func TestBackendRequestValidate(t *testing.T) {
	for name, c := range map[string]struct {
		edit  func(*event.Event)
		valid bool
	}{
		"valid":            {func(*event.Event) {}, true},
		"served, no code":  {func(e *event.Event) { e.Backend.Status, e.Backend.Code = 200, "" }, true},
		"without backend":  {func(e *event.Event) { e.Backend = nil }, false},
		"status zero":      {func(e *event.Event) { e.Backend.Status = 0 }, false},
		"status too large": {func(e *event.Event) { e.Backend.Status = 600 }, false},
	} {
		t.Run(name, func(t *testing.T) {
			e := backendReport()
			c.edit(e)
			err := e.Validate()
			if c.valid != (err == nil) || err != nil && !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("Validate: %v, want valid %v", err, c.valid)
			}
			if !c.valid {
				return
			}
			b, err := event.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := event.Decode(b)
			if err != nil || !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip: %+v %v", got, err)
			}
		})
	}
}
