package toolschema_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// BenchmarkValidate checks send_email arguments, a realistic schema with
// nested objects, arrays, patterns and enums, against valid and invalid
// arguments.
func BenchmarkValidate(b *testing.B) {
	r := registry(b, toolschema.Config{Tools: map[string]toolschema.Source{"send_email": {File: "testdata/send_email.json"}}})
	for _, bc := range []struct {
		name, args string
		valid      bool
	}{
		{name: "valid", valid: true, args: `{"to":["ops@acme.example","cfo@acme.example"],"cc":["audit@acme.example"],` +
			`"subject":"Q3 refund report","body":"Please find the report attached.","priority":"high",` +
			`"attachments":[{"name":"q3.pdf","uri":"s3://reports/q3.pdf","size_bytes":482113}]}`},
		{name: "invalid", args: `{"to":["ops@acme.example"],"subject":"Q3","body":"x",` +
			`"attachments":[{"name":"q3.pdf","uri":"file:///etc/shadow","size_bytes":482113}]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			args := json.RawMessage(bc.args)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Validate("send_email", args); (err == nil) != bc.valid {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObserve is the cost of a tools/list answer that changes nothing:
// the common case, paid on every listing.
func BenchmarkObserve(b *testing.B) {
	schema, err := os.ReadFile("testdata/send_email.json")
	if err != nil {
		b.Fatal(err)
	}
	answer := list(b, "", "send_email", string(schema), "search", schemaA, "lookup", schemaB)
	r := registry(b, toolschema.Config{})
	if _, err := r.Observe(answer); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if changes, err := r.Observe(answer); err != nil || len(changes) != 0 {
			b.Fatal(changes, err)
		}
	}
}
