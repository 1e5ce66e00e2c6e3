package chain_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

func goldenAlert() *event.Event {
	at := time.Date(2026, 11, 28, 10, 0, 2, 500000000, time.UTC)
	return &event.Event{V: 1, ID: "01JDXK0000000000000000000B", Kind: event.KindAlert, Time: at, Tenant: "acme",
		Instance: "corr-1", Epoch: "01EPOCH", Seq: 7, Prev: "sha256:cd", RequestID: "01REQ",
		Identity: &event.Identity{Subject: "user:alice", SessionID: "s-1"},
		Alert: &event.Alert{RuleID: "probing", Title: "Probing", Severity: event.SeverityHigh, Tags: []string{"T2"},
			Group: []event.GroupValue{{Field: "session_id", Value: "s-1"}},
			First: time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC), Last: at, Count: 3,
			Evidence: []string{"01E1", "01E3"}},
	}
}

// goldenAlertForm is goldenAlert's canonical form, written out column by
// column in RowBinary (every string and array here is shorter than 128, so
// each length is one byte): v2's columns, v3's (all empty), v4's.
func goldenAlertForm() []byte {
	b := []byte("rampart-chain-v4\x00\x01")
	str := func(ss ...string) {
		for _, s := range ss {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	arr := func(ss ...string) { b = append(b, byte(len(ss))); str(ss...) }
	str("01JDXK0000000000000000000B", "alert")
	u64(1795860002500000) // 2026-11-28T10:00:02.5Z in µs
	str("acme", "corr-1", "01EPOCH")
	u64(7)
	str("sha256:cd", "01REQ", "", "")          // prev_hash, request_id, traceparent, tracestate
	str("user:alice", "", "")                  // subject, issuer, spiffe_id
	arr()                                      // chain_subjects
	arr()                                      // chain_issuers
	str("s-1", "")                             // session_id, task_id
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
	str("probing", "Probing", "high")          // v4: alert_rule_id, alert_title, alert_severity
	arr("T2")                                  // alert_tags
	arr("session_id")                          // alert_group_fields
	arr("s-1")                                 // alert_group_values
	u64(1795860000123456)                      // alert_first_us
	u64(1795860002500000)                      // alert_last_us
	u64(3)                                     // alert_count
	arr("01E1", "01E3")                        // alert_evidence
	return b
}

// TestGoldenAlertHash pins rampart-chain-v4, the form of events with alert
// columns. The digest was computed once outside Go, with sha256sum over the
// bytes goldenAlertForm writes out (printf of their hex | xxd -r -p |
// sha256sum); the test holds both the written-out form and chain.Of to it,
// so neither the form nor the code can drift without failing here.
func TestGoldenAlertHash(t *testing.T) {
	const want = "sha256:" + goldenAlertDigest
	if got := "sha256:" + hex.EncodeToString(sha256Of(goldenAlertForm())); got != want {
		t.Fatalf("the written-out v4 form hashes to %s, want %s", got, want)
	}
	if got := chain.Of(goldenAlert()).String(); got != want {
		t.Errorf("v4 form: %s, want %s", got, want)
	}
	// Every alert field is covered: changing any one changes the hash.
	base := chain.Of(goldenAlert())
	for name, edit := range map[string]func(a *event.Alert){
		"rule":     func(a *event.Alert) { a.RuleID = "other" },
		"title":    func(a *event.Alert) { a.Title += "!" },
		"severity": func(a *event.Alert) { a.Severity = event.SeverityLow },
		"tags":     func(a *event.Alert) { a.Tags = nil },
		"group":    func(a *event.Alert) { a.Group[0].Value = "s-2" },
		"field":    func(a *event.Alert) { a.Group[0].Field = "task_id" },
		"first":    func(a *event.Alert) { a.First = a.First.Add(time.Microsecond) },
		"last":     func(a *event.Alert) { a.Last = a.Last.Add(time.Microsecond) },
		"count":    func(a *event.Alert) { a.Count++ },
		"evidence": func(a *event.Alert) { a.Evidence = a.Evidence[:1] },
		"moved":    func(a *event.Alert) { a.Evidence[1] = "01E2" },
	} {
		e := goldenAlert()
		edit(e.Alert)
		if chain.Of(e) == base {
			t.Errorf("changing the alert's %s leaves the hash unchanged", name)
		}
	}
	// An event without alert columns keeps its older form.
	if v2 := goldenEvent(); chain.Of(v2) != chain.Of(withEmptyAlert(v2)) {
		t.Error("an empty alert section changed a v2 event's hash")
	}
}

func withEmptyAlert(e *event.Event) *event.Event {
	c := *e
	c.Alert = &event.Alert{}
	return &c
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// goldenAlertDigest: see TestGoldenAlertHash.
const goldenAlertDigest = "d5e3fafc76f140581fb6f0cb92abe0b11398164bf162282862e9d394e2e7d9df"
