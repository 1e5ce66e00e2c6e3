package rules_test

import (
	"testing"

	"github.com/rampart-io/rampart/correlator/detect"
)

// TestShippedPack runs every fixture of the pack, as `rampart detect
// test correlator/rules` does, and checks each rule has its fixtures.
func TestShippedPack(t *testing.T) {
	rs := detect.Shipped()
	onDisk, err := detect.LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Hash() != rs.Hash() {
		t.Fatalf("embedded pack %s is not the directory's %s", rs.Hash(), onDisk.Hash())
	}
	rep, err := detect.RunFixtures(rs, ".", detect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Cases {
		if !c.Pass {
			t.Errorf("%s:%d %s: %s", c.File, c.Line, c.Name, c.Mismatch)
		}
	}
	// Every rule is exercised: some case expects an alert of it.
	fired := map[string]bool{}
	for _, c := range rep.Cases {
		for _, g := range c.Got {
			fired[g.Rule] = true
		}
	}
	for _, r := range rs.Rules() {
		if !fired[r.ID] {
			t.Errorf("rule %s: no fixture raises it", r.ID)
		}
	}
	t.Logf("%d cases passed, %d failed, pack %s", rep.Passed, rep.Failed, rs.Hash())
}
