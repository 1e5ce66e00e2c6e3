package enforcer_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/schema/event"
)

const egressPolicy = `id: egress
rules:
  - id: deny-internet
    match: 'destination == "internet"'
    effect: deny
    reason: no egress
  - id: allow-rest
    match: 'true'
    effect: allow
`

// TestProxyDestinationIsTheUpstream: in proxy mode every request goes to
// the upstream, so the client's Host must not choose the destination (and
// with it the data class) that policy decides on.
func TestProxyDestinationIsTheUpstream(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		c.PolicyFile = filepath.Join(h.dir, "egress.yaml")
		if err := os.WriteFile(c.PolicyFile, []byte(egressPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Destinations = destination.Config{
			Rules:   []destination.Rule{{Match: destination.Match{Host: "*.internal"}, Destination: "internal", DataClass: "internal"}},
			Default: destination.Target{Destination: "internet", DataClass: "public"},
		}
	})
	tok := h.token(t)
	for _, host := range []string{"tools.test", "x.internal", "X.INTERNAL", "x.internal:443", "x.internal."} {
		t.Run(host, func(t *testing.T) {
			before := h.hits.Load()
			resp, b, _ := h.rawRequest(t, postHost("/mcp", host, tok))
			if resp.StatusCode != http.StatusForbidden || h.hits.Load() != before {
				t.Fatalf("Host %s: status %d body %v, backend hits %d", host, resp.StatusCode, b, h.hits.Load()-before)
			}
			d := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindDecision)[event.KindDecision]
			if d.Request.Destination != "internet" || d.Decision.RuleID != "deny-internet" || d.Request.Host == host {
				t.Errorf("recorded host %q destination %q rule %q", d.Request.Host, d.Request.Destination, d.Decision.RuleID)
			}
		})
	}
}
