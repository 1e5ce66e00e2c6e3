package policy

import (
	"context"
	"errors"
	"testing"
)

func TestRecordArgsObligation(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`id: p
rules:
  - id: allow-search
    match: 'tool == "search"'
    effect: allow
    obligations: {record_args: true, redact: [token]}
  - id: allow-read
    match: 'tool == "read"'
    effect: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	for tool, want := range map[string]bool{"search": true, "read": false, "shell": false} {
		d := p.Decide(context.Background(), &Input{Tenant: "acme", Tool: tool})
		if d.Obligations.RecordArgs != want {
			t.Errorf("%s: record_args = %v, want %v", tool, d.Obligations.RecordArgs, want)
		}
	}
	_, err = Parse("bad.yaml", []byte("id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    obligations: {record_args: yes please}\n"))
	if !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("err = %v, want an invalid value error", err)
	}
}
