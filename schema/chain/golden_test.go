package chain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

func goldenEvent() *event.Event {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC)
	return &event.Event{V: 1, ID: "01JDXK0000000000000000000A", Kind: event.KindDecision, Time: at, Tenant: "acme",
		Instance: "enf-1", Epoch: "01EPOCH", Seq: 42, Prev: "sha256:" + "ab", RequestID: "01REQ",
		Trace:    event.Trace{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		Identity: &event.Identity{Subject: "user:alice", Issuer: "https://idp", Chain: []event.Actor{{Subject: "agent:planner"}}, SessionID: "s-1"},
		Request: &event.Request{Method: "POST", Host: "tools", Path: "/mcp", Headers: map[string]string{"user-agent": "x"}, RPCMethod: "tools/call", Tool: "search",
			ArgsDigest: "sha256:00", Args: json.RawMessage(`{"q":"é"}`), BodyBytes: 99, Destination: "internet", DataClass: "public"},
		Decision: &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", PolicyHash: "sha256:11", Reason: "ok", EvalNanos: 1234, Shadow: []string{"s"}},
	}
}

// TestGoldenHashes pins the canonical form: records already stored must
// keep verifying, so no change to it may pass unnoticed. The v2 vector was
// computed by the release before the v3 columns existed: an event without
// them must still hash exactly as it did.
func TestGoldenHashes(t *testing.T) {
	v2 := goldenEvent()
	if got, want := chain.Of(v2).String(), "sha256:0d9d5e37858daca300cb948f7ca3f30c333cfb3c22283dc09fdedc1bc7391e42"; got != want {
		t.Errorf("v2 form: %s, want %s", got, want)
	}
	v3 := goldenEvent()
	v3.Identity.SessionSource, v3.Identity.TaskSource = "server", "client"
	v3.Request.RPCKind, v3.Request.Prompt, v3.Request.Truncated = "request", "summary", []string{"args"}
	v3.Response = &event.Response{Status: 200, DurationNs: 5, Bytes: 9, Outcome: "client_gone"}
	if got, want := chain.Of(v3).String(), "sha256:273a4544689d38aec47a40c175d6cdb8fddd73425bd720693f35edcdba65c78a"; got != want {
		t.Errorf("v3 form: %s, want %s", got, want)
	}
	// Any one of the v3 columns set makes the form v3.
	one := goldenEvent()
	one.Request.Truncated = []string{""}
	if chain.Of(one) == chain.Of(v2) {
		t.Error("a truncated list holding an empty name hashed as the v2 form")
	}
}
