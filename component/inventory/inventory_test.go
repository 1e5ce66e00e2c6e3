package inventory

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// Bad inventories are refused with a stable error, each for its reason.
func TestBadInventoriesAreRefused(t *testing.T) {
	want := map[string]error{
		"prefix-mid-name": ErrPattern, "spiffe-mid-segment": ErrPattern, "inner-star": ErrPattern, "glob-class": ErrPattern,
		"spiffe-not-canonical": ErrPattern, "spiffe-no-scheme": ErrPattern,
		"both-names": ErrEntry, "no-name": ErrEntry, "unknown-key": ErrEntry, "duplicate": ErrDuplicate, "duplicate-in-tenant": ErrDuplicate,
	}
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) != len(want) {
		t.Fatalf("%d bad fixtures, %d expected errors", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yml")
		data, _ := os.ReadFile(f)
		if _, err := Parse(data); !errors.Is(err, want[name]) {
			t.Errorf("%s: %v, want %v", name, err, want[name])
		}
	}
}

func agentEvent(spiffe, subject string, chain ...string) *event.Event {
	e := &event.Event{Identity: &event.Identity{SPIFFEID: spiffe, Subject: subject}}
	for _, a := range chain {
		e.Identity.Chain = append(e.Identity.Chain, event.Actor{Subject: a})
	}
	return e
}

// The most specific entry wins, and no spelling of a name reaches an
// entry its owner did not write: other segments, other cases, dot
// segments, percent-encoding, pattern characters in the name itself.
func TestLookupPrecedenceAndHostileNames(t *testing.T) {
	data, err := os.ReadFile("testdata/inventory.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		e    *event.Event
		team string // "" for unregistered
	}{
		{"exact SPIFFE ID over its namespace's pattern", agentEvent("spiffe://acme.example/ns/agents/sa/planner", "agent:research-x"), "travel"},
		{"SPIFFE pattern below its segment", agentEvent("spiffe://acme.example/ns/agents/sa/other", ""), "platform"},
		{"SPIFFE ID over the subject's entry", agentEvent("spiffe://acme.example/ns/agents/x", "agent:planner"), "platform"},
		{"longer subject prefix over shorter", agentEvent("", "", "agent:research-finance-7"), "finance"},
		{"shorter subject prefix", agentEvent("", "", "agent:research-web"), "research"},
		{"exact subject", agentEvent("", "agent:planner"), "travel-sub"},
		{"the current actor is matched, not the principal", agentEvent("", "agent:planner", "agent:unknown"), ""},
		{"an unlisted SPIFFE ID falls back to the subject", agentEvent("spiffe://acme.example/ns/other/x", "agent:research-a"), "research"},
		{"the prefix alone matches", agentEvent("", "agent:research-"), "research"},
		{"a name the prefix only starts", agentEvent("", "agent:research"), ""},
		{"one separator short of a longer prefix: the shorter's team", agentEvent("", "", "agent:research-finance"), "research"},
		{"a tenant's agent, seen without its tenant", agentEvent("", "agent:billing"), ""},
		{"a neighbouring segment", agentEvent("spiffe://acme.example/ns/agentsx/sa/planner", ""), ""},
		{"another trust domain", agentEvent("spiffe://evil.example/ns/agents/sa/planner", ""), ""},
		{"upper-case trust domain", agentEvent("spiffe://ACME.example/ns/agents/sa/planner", ""), ""},
		{"dot segments", agentEvent("spiffe://acme.example/ns/agents/../../ns/agents/sa/planner", ""), ""},
		{"dot segment under a pattern", agentEvent("spiffe://acme.example/ns/agents/./x", ""), ""},
		{"percent-encoding", agentEvent("spiffe://acme.example/ns/agents%2Fsa/planner", ""), ""},
		{"empty segment", agentEvent("spiffe://acme.example/ns/agents//x", ""), ""},
		{"a star in the name is a star", agentEvent("", "agent:*"), ""},
		{"case of a subject", agentEvent("", "AGENT:planner"), ""},
		{"no identity", &event.Event{}, ""},
	} {
		a := ix.Agent(c.e)
		if a.Team != c.team || a.Registered != (c.team != "") || a.Inventory != ix.version {
			t.Errorf("%s: %+v, want team %q", c.name, a, c.team)
		}
	}
}

// A bad reload keeps the last good inventory; a good one replaces it; a
// file that disappears keeps it too. Without a file, nothing is claimed.
func TestReloadKeepsTheLastGoodInventory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inventory.yml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("agents:\n  - subject: \"agent:a\"\n    team: one\n")
	inv, err := New(Config{File: path, Reload: time.Hour}, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := agentEvent("", "agent:a")
	if got := inv.Agent(a); got.Team != "one" || !got.Registered {
		t.Fatalf("first load: %+v", got)
	}
	good := inv.Version()
	write("agents:\n  - subject: \"agent:a*\"\n    team: two\n") // refused: * not after a separator
	inv.Reload(ctx)
	if got := inv.Agent(a); got.Team != "one" || inv.Version() != good {
		t.Fatalf("after a bad reload: %+v, version %s", got, inv.Version())
	}
	os.Remove(path)
	inv.Reload(ctx)
	if got := inv.Agent(a); got.Team != "one" {
		t.Fatalf("after the file went: %+v", got)
	}
	write("agents:\n  - subject: \"agent:a\"\n    team: three\n")
	inv.Reload(ctx)
	if got := inv.Agent(a); got.Team != "three" || inv.Version() == good {
		t.Fatalf("after a good reload: %+v", got)
	}
	if _, err := New(Config{File: filepath.Join(t.TempDir(), "none.yml"), Reload: time.Hour}, "test", nil); err == nil {
		t.Error("a missing inventory at start was accepted")
	}
	none, err := New(Defaults(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := none.Agent(a); got.Registered || got.Inventory != "" {
		t.Errorf("without an inventory: %+v", got)
	}
	if err := (Config{File: path}).Validate(); err == nil {
		t.Error("a zero reload interval was accepted")
	}
}

// An entry with a tenant registers its agents in that tenant only: the
// same subject, or a name its pattern covers, acting in another tenant is
// unregistered there (another tenant's issuer can mint any subject), and
// a tenant's own entry is tried before a platform one.
func TestTenantScopedEntries(t *testing.T) {
	ix, err := Parse([]byte(`agents:
  - subject: "agent:finance-*"
    tenant: acme
    team: acme-finance
    risk_tier: high
  - subject: "agent:planner"
    tenant: acme
    team: acme-travel
  - subject: "agent:planner"
    team: platform
  - spiffe_id: spiffe://acme.example/ns/agents/*
    tenant: acme
    team: acme-agents
  - subject: "agent:planner"
    tenant: globex
    team: globex-travel
`))
	if err != nil {
		t.Fatal(err)
	}
	in := func(tenant string, e *event.Event) *event.Event { e.Tenant = tenant; return e }
	for _, c := range []struct {
		name string
		e    *event.Event
		team string
	}{
		{"a tenant's own prefix", in("acme", agentEvent("", "", "agent:finance-7")), "acme-finance"},
		{"another tenant's prefix, attacker-chosen subject", in("evil", agentEvent("", "", "agent:finance-7")), ""},
		{"another tenant's SPIFFE pattern", in("evil", agentEvent("spiffe://acme.example/ns/agents/sa/x", "")), ""},
		{"a tenant's SPIFFE pattern", in("acme", agentEvent("spiffe://acme.example/ns/agents/sa/x", "")), "acme-agents"},
		{"the tenant's entry over the platform's", in("acme", agentEvent("", "agent:planner")), "acme-travel"},
		{"each tenant its own entry", in("globex", agentEvent("", "agent:planner")), "globex-travel"},
		{"the platform's entry elsewhere", in("initech", agentEvent("", "agent:planner")), "platform"},
		{"no tenant: the platform's only", agentEvent("", "agent:finance-7"), ""},
	} {
		if a := ix.Agent(c.e); a.Team != c.team || a.Registered != (c.team != "") {
			t.Errorf("%s: %+v, want team %q", c.name, a, c.team)
		}
	}
}
