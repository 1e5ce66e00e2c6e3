package rules_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/event"
)

// Attacks on the shipped pack by a caller holding valid tokens of its own
// tenant: each test plays the attack and asserts what the pack should
// report. A test that fails names a hole the pack still has.

var at0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type attackEvents struct {
	n   int
	evs []*event.Event
}

// decision appends an allowed tools/call decision of tenant acme by
// user:mallory at at0+at; opts adjust it.
func (a *attackEvents) decision(at time.Duration, opts ...func(*event.Event)) *event.Event {
	a.n++
	e := &event.Event{
		V: event.Version, ID: fmt.Sprintf("A%05d", a.n), Kind: event.KindDecision, Time: at0.Add(at),
		Tenant: "acme", Instance: "enforcer-1", Seq: uint64(a.n), RequestID: fmt.Sprintf("R%05d", a.n),
		Identity: &event.Identity{Subject: "user:mallory", SessionID: "s1", SessionSource: "client"},
		Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "noop"},
		Decision: &event.Decision{Effect: event.EffectAllow},
	}
	for _, o := range opts {
		o(e)
	}
	a.evs = append(a.evs, e)
	return e
}

func inSession(s string) func(*event.Event) { return func(e *event.Event) { e.Identity.SessionID = s } }
func sensitiveRead(e *event.Event)          { e.Request.Tool, e.Request.DataClass = "read_file", "confidential" }
func internetSend(e *event.Event)           { e.Request.Tool, e.Request.Destination = "http_post", "internet" }
func denied(e *event.Event)                 { e.Decision.Effect = event.EffectDeny }
func calling(tool string) func(*event.Event) {
	return func(e *event.Event) { e.Request.Tool = tool }
}
func asActor(actor string) func(*event.Event) {
	return func(e *event.Event) { e.Identity.Chain = []event.Actor{{Subject: actor}} }
}
func withCode(c string) func(*event.Event) {
	return func(e *event.Event) { e.Decision.Effect, e.Decision.Code = event.EffectDeny, c }
}

// alertsOf runs the shipped pack over evs and returns rule's alerts.
func alertsOf(t *testing.T, rule string, evs []*event.Event, opts detect.Options) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, a := range detect.Run(detect.Shipped(), evs, time.Time{}, opts) {
		if a.Alert.RuleID == rule {
			out = append(out, a)
		}
	}
	return out
}

// cites reports whether some alert lists id as evidence.
func cites(alerts []*event.Event, id string) bool {
	for _, a := range alerts {
		if slices.Contains(a.Alert.Evidence, id) {
			return true
		}
	}
	return false
}

// A client chooses its session ids (session_source "client"), so the
// attacker reads in one session and sends in the next: the same principal,
// the same agent, five minutes apart. lethal-trifecta groups by session
// alone and never joins the two steps.
func TestAttackTrifectaSplitAcrossClientSessions(t *testing.T) {
	var a attackEvents
	read := a.decision(0, inSession("s-read"), sensitiveRead)
	send := a.decision(5*time.Minute, inSession("s-send"), internetSend)
	got := alertsOf(t, "lethal-trifecta", a.evs, detect.Options{})
	if !cites(got, read.ID) || !cites(got, send.ID) {
		t.Errorf("read %s and send %s by %s in two client-chosen sessions raised %d lethal-trifecta alerts citing them; want one",
			read.ID, send.ID, read.Identity.Subject, len(got))
	}
}

// A caller that sends no session id at all is in no session, and an event
// whose group value is empty takes no part: the whole trifecta done
// sessionless raises nothing.
func TestAttackTrifectaWithoutSession(t *testing.T) {
	var a attackEvents
	read := a.decision(0, inSession(""), sensitiveRead)
	send := a.decision(5*time.Minute, inSession(""), internetSend)
	got := alertsOf(t, "lethal-trifecta", a.evs, detect.Options{})
	if !cites(got, read.ID) || !cites(got, send.ID) {
		t.Errorf("sessionless read %s then send %s raised %d lethal-trifecta alerts citing them; want one",
			read.ID, send.ID, len(got))
	}
}

// The probing rules group by the current actor. One principal driving
// three delegated agents spreads twelve distinct denied tools, four per
// agent, over five minutes: each actor stays under five, so the
// principal's sibling rule must see them.
func TestAttackProbingToolsSpreadOverActors(t *testing.T) {
	var a attackEvents
	var first *event.Event
	for i := range 12 {
		e := a.decision(time.Duration(i)*10*time.Second, denied, calling(fmt.Sprintf("tool_%d", i)),
			asActor(fmt.Sprintf("agent:%d", i%3)))
		if first == nil {
			first = e
		}
	}
	got := alertsOf(t, "probing-denied-tools-principal", a.evs, detect.Options{})
	if len(got) == 0 {
		t.Errorf("12 distinct tools denied to %s through 3 actors in 2m raised no probing-denied-tools-principal alert", first.Identity.Subject)
	}
}

// The same for the denial burst: 27 denials in 30s, nine per actor.
func TestAttackProbingBurstSpreadOverActors(t *testing.T) {
	var a attackEvents
	for i := range 27 {
		a.decision(time.Duration(i)*time.Second, denied, asActor(fmt.Sprintf("agent:%d", i%3)))
	}
	got := alertsOf(t, "probing-denial-burst-principal", a.evs, detect.Options{})
	if len(got) == 0 {
		t.Errorf("27 denials of user:mallory through 3 actors in 27s raised no probing-denial-burst-principal alert")
	}
}

// cross-tenant-attempt has no group_by: its group is the whole tenant, and
// after an alert the group is muted for the window (10m). A decoy
// session_foreign probe (a session id guessed at random) mutes the rule
// for everyone in the tenant; a real attempt by another principal minutes
// later is in no alert.
func TestAttackDecoyMutesCrossTenant(t *testing.T) {
	var a attackEvents
	a.decision(0, withCode("session_foreign"))
	real := a.decision(5*time.Minute, withCode("session_foreign"), func(e *event.Event) { e.Identity.Subject = "user:other" })
	got := alertsOf(t, "cross-tenant-attempt", a.evs, detect.Options{})
	if !cites(got, real.ID) {
		t.Errorf("a session_foreign attempt by %s 5m after a decoy is cited by none of %d cross-tenant-attempt alerts",
			real.Identity.Subject, len(got))
	}
}

// The same mute on delegation-chain-deep: one decoy deep chain mutes it
// for the tenant.
func TestAttackDecoyMutesChainDeep(t *testing.T) {
	var a attackEvents
	a.decision(0, func(e *event.Event) {
		e.Identity.Chain = []event.Actor{{Subject: "a"}, {Subject: "b"}, {Subject: "c"}, {Subject: "d"}}
	})
	real := a.decision(5*time.Minute, withCode("chain_too_deep"), func(e *event.Event) { e.Identity.Subject = "user:other" })
	got := alertsOf(t, "delegation-chain-deep", a.evs, detect.Options{})
	got = append(got, alertsOf(t, "delegation-chain-refused", a.evs, detect.Options{})...)
	if !cites(got, real.ID) {
		t.Errorf("a chain_too_deep refusal of %s 5m after a decoy is cited by none of %d delegation-chain-deep or -refused alerts",
			real.Identity.Subject, len(got))
	}
}

// A token_tenant_foreign refusal has no tenant yet (the token was refused), so all
// of them share the tenant "" group of cross-tenant-attempt: one decoy
// token of any tenant mutes the rule for the refusals of every tenant
// for ten minutes.
func TestAttackDecoyMutesTokenClaimsAcrossTenants(t *testing.T) {
	var a attackEvents
	claims := func(e *event.Event) {
		e.Tenant, e.Identity = "", nil
		e.Decision.Effect, e.Decision.Code = event.EffectDeny, "token_tenant_foreign"
		e.Decision.Reason = `token_tenant_foreign: tenant claim "globex", but the issuer is "acme"'s`
	}
	a.decision(0, claims)
	real := a.decision(5*time.Minute, claims)
	got := alertsOf(t, "cross-tenant-attempt", a.evs, detect.Options{})
	if !cites(got, real.ID) {
		t.Errorf("a token_tenant_foreign refusal 5m after a decoy is cited by none of %d cross-tenant-attempt alerts", len(got))
	}
}

// A client chooses its session ids, so grouped by session a fresh id per
// call hides any breadth: twenty tools and five destinations in ten
// minutes, each call in a session of its own, must still be seen.
func TestAttackExcessiveAgencySpreadOverSessions(t *testing.T) {
	var a attackEvents
	dests := []string{"crm", "mail", "internet", "billing", "hr"}
	for i := range 20 {
		a.decision(time.Duration(i)*20*time.Second, calling(fmt.Sprintf("tool%02d", i)), inSession(fmt.Sprintf("fresh-%d", i)),
			func(e *event.Event) { e.Request.Destination = dests[i%len(dests)] })
	}
	for _, rule := range []string{"excessive-agency-tools", "excessive-agency-destinations"} {
		if got := alertsOf(t, rule, a.evs, detect.Options{}); len(got) == 0 {
			t.Errorf("%s: 20 tools and 5 destinations of user:mallory in 20 fresh sessions raised no alert", rule)
		}
	}
}

// A tenant holds at most a tenth of a rule's groups. A flood of harmless
// confidential reads, one per principal the tenant's issuer can mint,
// fills lethal-trifecta's share; a victim principal's read and send after
// it must still be tracked (the flood's least recently used groups give
// way), and the exhaustion must itself raise an alert naming the tenant
// and the rule.
func TestAttackGroupFloodBlindsTrifecta(t *testing.T) {
	var a attackEvents
	for i := range 200 {
		a.decision(time.Duration(i)*time.Second, sensitiveRead, func(e *event.Event) { e.Identity.Subject = fmt.Sprintf("user:flood-%d", i) })
	}
	victim := func(e *event.Event) { e.Identity.Subject = "user:victim" }
	read := a.decision(10*time.Minute, sensitiveRead, victim)
	a.decision(11*time.Minute, internetSend, victim)
	opts := detect.Options{MaxGroupsPerRule: 2000} // a tenant's share: 200
	if got := alertsOf(t, "lethal-trifecta", a.evs, opts); !cites(got, read.ID) {
		t.Errorf("user:victim's read and send after a flood of 200 principals' reads raised no lethal-trifecta alert (%d alerts)", len(got))
	}
	requireExhausted(t, a.evs, opts, "lethal-trifecta", "acme")
}

// One principal's hanging calls fill response-missing's share of its
// tenant: each is a group until its 5 minutes pass. Another principal's
// hanging calls, made before and after the flood, must still be reported: one
// principal holds at most a tenth of its tenant's share and gives way to
// itself.
func TestAttackHangingCallsBlindResponseMissing(t *testing.T) {
	var a attackEvents
	victim := func(e *event.Event) { e.Identity.Subject = "user:victim" }
	before := a.decision(0, calling("transfer"), victim)
	for i := range 200 {
		a.decision(time.Second+time.Duration(i)*time.Millisecond, calling("hang"))
	}
	after := a.decision(2*time.Second, calling("transfer"), victim)
	opts := detect.Options{MaxGroupsPerRule: 2000}
	var got []*event.Event
	for _, x := range detect.Run(detect.Shipped(), a.evs, at0.Add(time.Hour), opts) {
		if x.Alert.RuleID == "response-missing" {
			got = append(got, x)
		}
	}
	for _, lost := range []*event.Event{before, after} {
		if !cites(got, lost.ID) {
			t.Errorf("user:victim's call %s without a response, beside 200 hanging calls of user:mallory, raised no response-missing alert (%d alerts)", lost.ID, len(got))
		}
	}
	requireExhausted(t, a.evs, opts, "response-missing", "acme")
}

// requireExhausted fails unless running evs raised a state-exhaustion
// alert for rule in tenant.
func requireExhausted(t *testing.T, evs []*event.Event, opts detect.Options, rule, tenant string) {
	t.Helper()
	for _, x := range alertsOf(t, detect.StateExhaustedRule, evs, opts) {
		for _, g := range x.Alert.Group {
			if g.Field == "rule" && g.Value == rule && x.Tenant == tenant && len(x.Alert.Evidence) > 0 {
				return
			}
		}
	}
	t.Errorf("no %s alert names rule %s in tenant %s", detect.StateExhaustedRule, rule, tenant)
}
