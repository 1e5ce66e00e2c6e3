package correlator_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// reloads returns the correlator's rule load events, in order.
func (r *rig) reloads() []*event.Decision {
	var out []*event.Decision
	for _, e := range r.stored() {
		if e.Kind == event.KindPolicy && correlator.IsCorrelatorInstance(e.Instance) {
			out = append(out, e.Decision)
		}
	}
	return out
}

func (r *rig) waitReloads(n int) []*event.Decision {
	r.t.Helper()
	var got []*event.Decision
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = r.reloads(); len(got) >= n {
			return got
		}
	}
	r.t.Fatalf("%d rule load events, want %d", len(got), n)
	return nil
}

func copyRule(t *testing.T, dir, name string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("rules", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every load of the rules is a policy event of the correlator's instance
// with the set's hash; a reload that fails is one with code
// rules_reload_failed and the hash of the set that keeps running, and it
// keeps raising alerts.
func TestRuleReloadsAreRecorded(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	copyRule(t, dir, "probing-denial-burst.yaml")
	r.startWith(func(c *correlator.Config) {
		c.Detect.Shipped, c.Detect.RulesDir, c.Detect.ReloadInterval = false, dir, 100*time.Millisecond
	})
	first := r.waitReloads(1)[0]
	if first.PolicyID != correlator.RulesPolicyID || first.Effect != event.EffectAllow || first.PolicyHash == "" {
		t.Fatalf("first load %+v", first)
	}

	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: broken\nmatch: 'kind =='\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	failed := r.waitReloads(2)[1]
	if failed.Effect != event.EffectDeny || failed.Code != correlator.CodeRulesReloadFailed || failed.PolicyHash != first.PolicyHash {
		t.Fatalf("failed reload %+v, want code %s and hash %s", failed, correlator.CodeRulesReloadFailed, first.PolicyHash)
	}
	// The last good set still runs: ten denials of one actor in a minute.
	r.deny("acme", "s1", 10)
	r.waitAlerts(map[string]int{"acme/user:alice": 1})

	os.Remove(filepath.Join(dir, "broken.yaml"))
	copyRule(t, dir, "probing-denied-tools.yaml")
	next := r.waitReloads(3)[2]
	if next.Effect != event.EffectAllow || next.PolicyHash == first.PolicyHash || next.PolicyHash == "" {
		t.Fatalf("reload %+v after %+v", next, first)
	}
	r.checkChains()
}

// TestABadInventoryStopsTheStart: a correlator configured with an
// inventory that does not load does not start (there is no last good one
// to keep), and says which rule of the file it broke, by stable code.
func TestABadInventoryStopsTheStart(t *testing.T) {
	r := newRig(t)
	bad := filepath.Join(t.TempDir(), "inventory.yml")
	if err := os.WriteFile(bad, []byte("agents:\n  - subject: \"agent:research*\"\n    team: research\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"a pattern mid-name": bad, "no file": bad + ".gone"} {
		cfg := correlator.Defaults()
		cfg.NATSURL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = stream.URLs(r.srv.URL()), chstore.AddrList(r.addr), r.ch.Database()
		cfg.Instance = "correlator:test"
		cfg.Inventory.File = file
		c, err := correlator.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			c.Close()
			t.Fatalf("%s: the correlator started", name)
		}
		if name == "a pattern mid-name" && !errors.Is(err, inventory.ErrPattern) {
			t.Errorf("%s: %v, want %v", name, err, inventory.ErrPattern)
		}
	}
}
