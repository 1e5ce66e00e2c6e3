package event_test

import (
	"fmt"
	"time"

	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/subject"
)

// A producer encodes its events into one message, published on the subject
// of the first event's tenant and kind; a consumer decodes the message
// against that subject, which refuses events of another tenant.
func Example() {
	at := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	request := &event.Event{V: 1, ID: "01JDWQ9Z0000000000000000R1", Kind: event.KindRequest, Time: at,
		Tenant: "acme", Instance: "enforcer-1", Seq: 1, RequestID: "req-1",
		Request: &event.Request{Method: "POST", Host: "tools.acme", Path: "/mcp", RPCMethod: "tools/call", Tool: "search"}}
	decision := &event.Event{V: 1, ID: "01JDWQ9Z0000000000000000D1", Kind: event.KindDecision, Time: at,
		Tenant: "acme", Instance: "enforcer-1", Seq: 2, RequestID: "req-1", Request: request.Request,
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "tools", RuleID: "allow-search", PolicyHash: "sha256:00"}}

	var msg []byte
	for _, e := range []*event.Event{request, decision} {
		var err error
		if msg, err = event.AppendMessage(msg, e); err != nil {
			fmt.Println(err)
			return
		}
	}
	subj, err := subject.For(request.Tenant, string(request.Kind))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("subject:", subj)

	events, err := event.DecodeMessageOn(subj, msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		fmt.Println(e.Seq, e.Kind, e.Request.Tool)
	}
	d := events[1].Decision
	fmt.Println("decided:", d.Effect, "by", d.RuleID)

	// The same message under another tenant's subject is refused.
	other, _ := subject.For("globex", "request")
	_, err = event.DecodeMessageOn(other, msg)
	fmt.Println(err)
	// Output:
	// subject: rampart.v1.acme.request
	// 1 request search
	// 2 decision search
	// decided: allow by allow-search
	// event: message does not match its subject: subject "rampart.v1.globex.request" carries tenant "acme"
}
