package policy_test

import (
	"context"
	"testing"

	"github.com/rampart-io/rampart/enforcer/policy"
)

// The example policy's broker rules decide as the README says: fixtures in
// testdata/example, run against enforcer/policy.example.yaml itself.
func TestExamplePolicyFixtures(t *testing.T) {
	p, err := policy.Load("../policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policy.RunFixtures(context.Background(), p, "testdata/example")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cases {
		if !c.Pass {
			t.Errorf("%s (line %d): %s", c.Name, c.Line, c.Mismatch)
		}
	}
	if rep.Passed == 0 {
		t.Fatal("no fixtures ran")
	}
}
