package detect

import (
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// load compiles rule files given as name -> content.
func load(t testing.TB, files map[string]string) *RuleSet {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	rs, err := LoadFS(fsys, "test")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rs
}

// rule is a rule file with the required fields around body.
func rule(id, body string) string {
	return fmt.Sprintf("id: %s\ntitle: %s\ndescription: test rule\nseverity: high\ntags: [owasp-llm:LLM06]\n%s", id, id, body)
}

// ev is a decision event of tenant acme at t0+at; opts adjust it.
type evOpt func(*event.Event)

var evN int

func ev(at time.Duration, opts ...evOpt) *event.Event {
	evN++
	e := &event.Event{
		V: event.Version, ID: fmt.Sprintf("E%04d", evN), Kind: event.KindDecision, Time: t0.Add(at),
		Tenant: "acme", Instance: "i1", Seq: uint64(evN), RequestID: fmt.Sprintf("R%04d", evN),
		Identity: &event.Identity{Subject: "user:alice", SessionID: "s1"},
		Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call"},
		Decision: &event.Decision{Effect: event.EffectAllow},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func tenant(t string) evOpt  { return func(e *event.Event) { e.Tenant = t } }
func session(s string) evOpt { return func(e *event.Event) { e.Identity.SessionID = s } }
func subject(s string) evOpt { return func(e *event.Event) { e.Identity.Subject = s } }
func tool(s string) evOpt    { return func(e *event.Event) { e.Request.Tool = s } }
func deny(e *event.Event)    { e.Decision.Effect = event.EffectDeny }
func class(c string) evOpt   { return func(e *event.Event) { e.Request.DataClass = c } }
func dest(d string) evOpt    { return func(e *event.Event) { e.Request.Destination = d } }
func code(c string) evOpt    { return func(e *event.Event) { e.Decision.Code = c } }
func actorChain(a ...string) evOpt {
	return func(e *event.Event) {
		for _, s := range a {
			e.Identity.Chain = append(e.Identity.Chain, event.Actor{Subject: s})
		}
	}
}

// feed observes each event and returns every alert.
func feed(e *Engine, evs ...*event.Event) []*event.Event {
	var out []*event.Event
	for _, x := range evs {
		out = append(out, e.Observe(x)...)
	}
	return out
}

func ids(alerts []*event.Event) [][]string {
	var out [][]string
	for _, a := range alerts {
		out = append(out, a.Alert.Evidence)
	}
	return out
}
