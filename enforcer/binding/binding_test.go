package binding_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/binding"
)

var (
	t0    = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	alice = binding.Principal{Tenant: "acme", Issuer: "https://idp", Subject: "user:alice"}
	bob   = binding.Principal{Tenant: "acme", Issuer: "https://idp", Subject: "user:bob"}
	eve   = binding.Principal{Tenant: "globex", Issuer: "https://idp", Subject: "user:alice"}
)

func TestAnotherPrincipalCannotJoin(t *testing.T) {
	tb := binding.New(binding.Config{})
	if o, src := tb.Claim(binding.Session, "s-1", alice, t0); o != binding.Held || src != binding.Client {
		t.Fatalf("first claim: %v %v", o, src)
	}
	for _, p := range []binding.Principal{bob, eve, {Tenant: "acme", Issuer: "https://other", Subject: "user:alice"}} {
		if o, _ := tb.Claim(binding.Session, "s-1", p, t0); o != binding.Foreign {
			t.Errorf("%+v joined alice's session", p)
		}
	}
	// A task id of the same spelling is another namespace.
	if o, _ := tb.Claim(binding.Task, "s-1", bob, t0); o != binding.Held {
		t.Error("a task id collided with a session id")
	}
	if o, src := tb.Claim(binding.Session, "s-1", alice, t0); o != binding.Held || src != binding.Client {
		t.Errorf("owner's claim: %v %v", o, src)
	}
}

func TestIssuedByTheBackend(t *testing.T) {
	tb := binding.New(binding.Config{})
	if !tb.Issue(binding.Session, "s-1", alice, t0) {
		t.Fatal("issue refused")
	}
	if o, src := tb.Claim(binding.Session, "s-1", alice, t0); o != binding.Held || src != binding.Server {
		t.Errorf("claim of an issued id: %v %v", o, src)
	}
	if tb.Issue(binding.Session, "s-1", bob, t0) {
		t.Error("an id bound to alice was issued to bob")
	}
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0); o != binding.Foreign {
		t.Error("bob joined an issued session")
	}
	// A client-chosen id the backend then confirms becomes the server's.
	tb.Claim(binding.Session, "s-2", alice, t0)
	if !tb.Issue(binding.Session, "s-2", alice, t0) {
		t.Fatal("confirm refused")
	}
	if _, src := tb.Claim(binding.Session, "s-2", alice, t0); src != binding.Server {
		t.Errorf("confirmed id source %v", src)
	}
}

func TestReleaseOnlyByTheOwner(t *testing.T) {
	tb := binding.New(binding.Config{})
	tb.Issue(binding.Session, "s-1", alice, t0)
	tb.Release(binding.Session, "s-1", bob)
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0); o != binding.Foreign {
		t.Fatal("bob released alice's session")
	}
	tb.Release(binding.Session, "s-1", alice)
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0); o != binding.Held {
		t.Fatal("a released id stays bound")
	}
}

func TestIdleBindingsEnd(t *testing.T) {
	tb := binding.New(binding.Config{IdleTimeout: time.Hour})
	tb.Claim(binding.Session, "s-1", alice, t0)
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0.Add(59*time.Minute)); o != binding.Foreign {
		t.Fatal("binding ended early")
	}
	tb.Claim(binding.Session, "s-1", alice, t0.Add(90*time.Minute)) // used: kept
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0.Add(140*time.Minute)); o != binding.Foreign {
		t.Fatal("a used binding ended")
	}
	if o, _ := tb.Claim(binding.Session, "s-1", bob, t0.Add(151*time.Minute)); o != binding.Held {
		t.Fatal("an idle binding did not end")
	}
}

// TestFloodEvictsOnlyTheFlooder: one tenant presenting ever new ids fills
// its own share; another tenant's bindings all stay.
func TestFloodEvictsOnlyTheFlooder(t *testing.T) {
	tb := binding.New(binding.Config{MaxPerTenant: 100, MaxTotal: 250})
	for i := range 100 {
		tb.Claim(binding.Session, fmt.Sprint("victim-", i), eve, t0)
	}
	for i := range 10_000 {
		tb.Claim(binding.Session, fmt.Sprint("flood-", i), alice, t0)
	}
	total, victim := tb.Len("globex")
	_, flooder := tb.Len("acme")
	if victim != 100 || flooder != 100 || total != 200 {
		t.Fatalf("total %d, victim %d, flooder %d", total, victim, flooder)
	}
	for i := range 100 {
		if o, _ := tb.Claim(binding.Session, fmt.Sprint("victim-", i), alice, t0); o != binding.Foreign {
			t.Fatalf("victim's binding %d was evicted", i)
		}
	}
	// Many tenants past the total: the largest gives way.
	for i := range 3 {
		for j := range 100 {
			tb.Claim(binding.Session, fmt.Sprint("t", i, "-", j), binding.Principal{Tenant: fmt.Sprint("t", i)}, t0)
		}
	}
	if total, _ := tb.Len(""); total > 250 {
		t.Fatalf("total %d past the bound", total)
	}
}

// TestMemoryDoesNotGrowWithIDs: a binding keeps a digest, not the id.
func TestMemoryDoesNotGrowWithIDs(t *testing.T) {
	perBinding := func(idLen int) float64 {
		const n = 20_000
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tb := binding.New(binding.Config{MaxPerPrincipal: n, MaxPerTenant: n, MaxTotal: n})
		pad := strings.Repeat("x", idLen)
		for i := range n {
			tb.Claim(binding.Session, fmt.Sprint(i, pad), alice, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(tb)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	short, long := perBinding(8), perBinding(4096)
	if short < 50 {
		t.Fatalf("%.0f bytes per binding: the table did not keep them all", short)
	}
	t.Logf("bytes per binding: %.0f with 8-byte ids, %.0f with 4 KiB ids", short, long)
	if long > 2*short+64 || short > 400 {
		t.Errorf("bytes per binding: %.0f short, %.0f long", short, long)
	}
}

// TestFloodWithinATenantEvictsOnlyTheFlooder: a principal flooding its own
// tenant's share evicts its own bindings, never a neighbour's: else it
// could evict a session it knows the id of and then claim it.
func TestFloodWithinATenantEvictsOnlyTheFlooder(t *testing.T) {
	tb := binding.New(binding.Config{MaxPerTenant: 50, MaxPerPrincipal: 40})
	tb.Issue(binding.Session, "alice-secret", alice, t0)
	for i := range 1000 {
		tb.Claim(binding.Session, fmt.Sprint("bob-", i), bob, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if o, _ := tb.Claim(binding.Session, "alice-secret", bob, t0.Add(time.Hour)); o != binding.Foreign {
		t.Fatal("bob evicted alice's session and claimed it")
	}
	if _, n := tb.Len("acme"); n > 41 {
		t.Errorf("acme holds %d bindings: bob past his share", n)
	}
}
