package chain_test

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

func goldenCredential() *event.Event {
	at := time.Date(2026, 12, 2, 5, 0, 0, 250000000, time.UTC)
	return &event.Event{V: 1, ID: "01JDXK0000000000000000000C", Kind: event.KindCredential, Time: at, Tenant: "acme",
		Instance: "enf-1", Epoch: "01EPOCH", Seq: 9, Prev: "sha256:ef", RequestID: "01REQ",
		Identity: &event.Identity{Subject: "user:alice", TaskID: "t-1"},
		Credential: &event.Credential{Action: event.CredentialIssued, JTI: "01JTI", Audience: "https://crm",
			Scope: []string{"search"}, KeyID: "k1", Expires: time.Date(2026, 12, 2, 5, 5, 0, 250000000, time.UTC), Reason: "destination crm"},
	}
}

// goldenCredentialForm is goldenCredential's canonical form, written out
// column by column in RowBinary (every string and array shorter than 128,
// so each length is one byte): v2's columns, v3's and v4's (all empty),
// v5's.
func goldenCredentialForm() []byte {
	b := []byte("rampart-chain-v5\x00\x01")
	str := func(ss ...string) {
		for _, s := range ss {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	arr := func(ss ...string) { b = append(b, byte(len(ss))); str(ss...) }
	str("01JDXK0000000000000000000C", "credential")
	u64(1796187600250000) // 2026-12-02T05:00:00.25Z in µs
	str("acme", "enf-1", "01EPOCH")
	u64(9)
	str("sha256:ef", "01REQ", "", "")          // prev_hash, request_id, traceparent, tracestate
	str("user:alice", "", "")                  // subject, issuer, spiffe_id
	arr()                                      // chain_subjects
	arr()                                      // chain_issuers
	str("", "t-1")                             // session_id, task_id
	str("", "", "", "", "")                    // method, host, path, query, resource
	arr()                                      // header_names
	arr()                                      // header_values
	str("", "", "", "")                        // rpc_method, tool, args_digest, args
	u64(0)                                     // body_bytes
	str("", "", "", "", "", "", "", "")        // destination .. code
	u64(0)                                     // eval_ns
	arr()                                      // shadow_rules
	b = binary.LittleEndian.AppendUint32(b, 0) // status
	u64(0)                                     // duration_ns
	u64(0)                                     // response_bytes
	str("", "")                                // checkpoint_key_id, checkpoint_sig
	arr()                                      // checkpoint_unrecorded
	str("", "", "", "")                        // v3: session_source .. prompt
	arr()                                      // truncated
	str("")                                    // response_outcome
	str("", "", "")                            // v4: alert_rule_id, alert_title, alert_severity
	arr()                                      // alert_tags
	arr()                                      // alert_group_fields
	arr()                                      // alert_group_values
	u64(0)                                     // alert_first_us
	u64(0)                                     // alert_last_us
	u64(0)                                     // alert_count
	arr()                                      // alert_evidence
	str("")                                    // v5: decision_credential_jti
	str("issued", "01JTI", "https://crm")      // credential_action, _jti, _audience
	arr("search")                              // credential_scope
	str("k1")                                  // credential_key_id
	u64(1796187900250000)                      // credential_expires_us
	str("destination crm")                     // credential_reason
	return b
}

// TestGoldenCredentialHash pins rampart-chain-v5, the form of events with
// credential columns. The digest was computed once outside Go (Python's
// hashlib over the bytes goldenCredentialForm writes out); the test holds
// both the written-out form and chain.Of to it.
func TestGoldenCredentialHash(t *testing.T) {
	const want = "sha256:" + goldenCredentialDigest
	if got := "sha256:" + hex.EncodeToString(sha256Of(goldenCredentialForm())); got != want {
		t.Fatalf("the written-out v5 form hashes to %s, want %s", got, want)
	}
	if got := chain.Of(goldenCredential()).String(); got != want {
		t.Errorf("v5 form: %s, want %s", got, want)
	}
	base := chain.Of(goldenCredential())
	for name, edit := range map[string]func(e *event.Event){
		"action":   func(e *event.Event) { e.Credential.Action = event.CredentialRevoked },
		"jti":      func(e *event.Event) { e.Credential.JTI = "01JTJ" },
		"audience": func(e *event.Event) { e.Credential.Audience = "https://crm2" },
		"scope":    func(e *event.Event) { e.Credential.Scope = []string{"search", "send"} },
		"key":      func(e *event.Event) { e.Credential.KeyID = "k2" },
		"expires":  func(e *event.Event) { e.Credential.Expires = e.Credential.Expires.Add(time.Microsecond) },
		"reason":   func(e *event.Event) { e.Credential.Reason = "" },
		"task":     func(e *event.Event) { e.Identity.TaskID = "t-2" },
	} {
		e := goldenCredential()
		edit(e)
		if chain.Of(e) == base {
			t.Errorf("changing the credential's %s leaves the hash unchanged", name)
		}
	}
	// A decision that names its credential hashes in v5; without one it
	// keeps its older form, so stored decisions still verify.
	d := goldenEvent()
	before := chain.Of(d)
	d.Decision.CredentialJTI = "01JTI"
	if chain.Of(d) == before {
		t.Error("a decision's credential jti is not covered by the chain")
	}
	if v2 := goldenEvent(); chain.Of(v2) != chain.Of(withEmptyCredential(v2)) {
		t.Error("an empty credential section changed a v2 event's hash")
	}
}

func withEmptyCredential(e *event.Event) *event.Event {
	c := *e
	c.Credential = &event.Credential{}
	return &c
}

// goldenCredentialDigest: see TestGoldenCredentialHash.
const goldenCredentialDigest = "d6a1749b73ba0de93983bfac26bbbd70f906897f8c336da1fbe24cc26e7f8092"
