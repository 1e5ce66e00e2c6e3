package policy_test

import (
	"context"
	"os"
	"testing"

	"github.com/rampart-io/rampart/enforcer/policy"
)

// FuzzParse feeds arbitrary bytes to the loader: it must return a policy
// or an *Error, never panic, and a policy it returns must decide.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/default.yaml", "testdata/bundle/acme.yaml", "testdata/bundle/default.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(*policy.Error); !ok {
				t.Fatalf("error %T is not a *policy.Error: %v", err, err)
			}
			return
		}
		in := &policy.Input{Tenant: "acme", Tool: "search", Args: map[string]any{"path": "/x", "n": int64(1)}}
		d := p.Decide(context.Background(), in)
		if d.RuleID == "" || d.PolicyHash != p.Hash() {
			t.Fatalf("decision %+v", d)
		}
	})
}
