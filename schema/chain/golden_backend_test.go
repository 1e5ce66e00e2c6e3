package chain_test

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

func goldenBackend() *event.Event {
	at := time.Date(2026, 12, 2, 6, 0, 0, 500000000, time.UTC)
	return &event.Event{V: 1, ID: "01JDXK0000000000000000000D", Kind: event.KindBackendRequest, Time: at, Tenant: "acme",
		Instance: "backend:files", Epoch: "01JDXK0000000000000000000D", Seq: 1, RequestID: "01REQ",
		Identity: &event.Identity{Subject: "user:alice", Issuer: "https://rampart.test", SPIFFEID: "spiffe://acme/enforcer", SessionID: "s-1", TaskID: "t-1"},
		Request:  &event.Request{Method: "GET", Host: "files", Path: "/read"},
		Backend:  &event.Backend{JTI: "01JTI", Audience: "https://files", Client: "127.0.0.1:40000", Status: 401, Code: "credential_revoked"},
	}
}

// goldenBackendForm is goldenBackend's canonical form, written out column
// by column in RowBinary (every string and array shorter than 128, so each
// length is one byte): v2's columns, v3's to v5's (all empty), v6's.
func goldenBackendForm() []byte {
	b := []byte("rampart-chain-v6\x00\x01")
	str := func(ss ...string) {
		for _, s := range ss {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	u32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	arr := func(ss ...string) { b = append(b, byte(len(ss))); str(ss...) }
	str("01JDXK0000000000000000000D", "backend_request")
	u64(1796191200500000) // 2026-12-02T06:00:00.5Z in µs
	str("acme", "backend:files", "01JDXK0000000000000000000D")
	u64(1)
	str("", "01REQ", "", "")                                            // prev_hash, request_id, traceparent, tracestate
	str("user:alice", "https://rampart.test", "spiffe://acme/enforcer") // subject, issuer, spiffe_id
	arr()                                                               // chain_subjects
	arr()                                                               // chain_issuers
	str("s-1", "t-1")                                                   // session_id, task_id
	str("GET", "files", "/read", "", "")                                // method, host, path, query, resource
	arr()                                                               // header_names
	arr()                                                               // header_values
	str("", "", "", "")                                                 // rpc_method, tool, args_digest, args
	u64(0)                                                              // body_bytes
	str("", "", "", "", "", "", "", "")                                 // destination .. code
	u64(0)                                                              // eval_ns
	arr()                                                               // shadow_rules
	u32(0)                                                              // status
	u64(0)                                                              // duration_ns
	u64(0)                                                              // response_bytes
	str("", "")                                                         // checkpoint_key_id, checkpoint_sig
	arr()                                                               // checkpoint_unrecorded
	str("", "", "", "")                                                 // v3: session_source .. prompt
	arr()                                                               // truncated
	str("")                                                             // response_outcome
	str("", "", "")                                                     // v4: alert_rule_id, alert_title, alert_severity
	arr()                                                               // alert_tags
	arr()                                                               // alert_group_fields
	arr()                                                               // alert_group_values
	u64(0)                                                              // alert_first_us
	u64(0)                                                              // alert_last_us
	u64(0)                                                              // alert_count
	arr()                                                               // alert_evidence
	str("")                                                             // v5: decision_credential_jti
	str("", "", "")                                                     // credential_action, _jti, _audience
	arr()                                                               // credential_scope
	str("")                                                             // credential_key_id
	u64(0)                                                              // credential_expires_us
	str("")                                                             // credential_reason
	str("01JTI", "https://files", "127.0.0.1:40000")                    // v6: backend_jti, _audience, _client
	u32(401)                                                            // backend_status
	str("credential_revoked")                                           // backend_code
	return b
}

// TestGoldenBackendHash pins rampart-chain-v6, the form of events with
// backend columns. The digest was computed outside Go: a Python script
// wrote the same bytes from its own copy of the column list and hashed
// them with hashlib; the test holds both the written-out form and
// chain.Of to it.
func TestGoldenBackendHash(t *testing.T) {
	const want = "sha256:" + goldenBackendDigest
	if got := "sha256:" + hex.EncodeToString(sha256Of(goldenBackendForm())); got != want {
		t.Fatalf("the written-out v6 form hashes to %s, want %s", got, want)
	}
	if got := chain.Of(goldenBackend()).String(); got != want {
		t.Errorf("v6 form: %s, want %s", got, want)
	}
	base := chain.Of(goldenBackend())
	for name, edit := range map[string]func(e *event.Event){
		"jti":      func(e *event.Event) { e.Backend.JTI = "01JTJ" },
		"audience": func(e *event.Event) { e.Backend.Audience = "https://files2" },
		"client":   func(e *event.Event) { e.Backend.Client = "127.0.0.2:40000" },
		"status":   func(e *event.Event) { e.Backend.Status = 200 },
		"code":     func(e *event.Event) { e.Backend.Code = "" },
		"spiffe":   func(e *event.Event) { e.Identity.SPIFFEID = "" },
		"request":  func(e *event.Event) { e.RequestID = "" },
	} {
		e := goldenBackend()
		edit(e)
		if chain.Of(e) == base {
			t.Errorf("changing the backend request's %s leaves the hash unchanged", name)
		}
	}
	if v2 := goldenEvent(); chain.Of(v2) != chain.Of(withEmptyBackend(v2)) {
		t.Error("an empty backend section changed a v2 event's hash")
	}
}

func withEmptyBackend(e *event.Event) *event.Event {
	c := *e
	c.Backend = &event.Backend{}
	return &c
}

// goldenBackendDigest: see TestGoldenBackendHash.
const goldenBackendDigest = "885228b0c990dbbe91d0c2938e998940b1b90f508bc4f887189d53cb0e13ad12"
