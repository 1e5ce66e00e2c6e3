package chstore_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// hashFixture covers every hashed field with values that stress the
// canonical form: empty and absent sections, lengths past one and two
// bytes, bytes that are zero, quotes and non-ASCII, negative integers.
func hashFixture() []*event.Event {
	r := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string {
		const alphabet = "ab'\\\"\x00\x01é→\n{}"
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(string([]rune(alphabet)[r.IntN(len([]rune(alphabet)))]))
		}
		return b.String()
	}
	ids := &event.IDSource{}
	var out []*event.Event
	for i := range 40 {
		at := t0.Add(time.Duration(i)*time.Second + time.Duration(r.IntN(1_000_000))*time.Microsecond)
		e := &event.Event{V: event.Version, ID: ids.New(at), Kind: event.KindRequest, Time: at,
			Tenant: text(i % 5), Instance: "enf-" + text(3), Epoch: "01EPOCH", Seq: uint64(i+1) << (i % 40),
			Prev: text(i % 72), RequestID: text(26), Trace: event.Trace{TraceParent: text(55), TraceState: text(i % 3)}}
		switch i % 4 {
		case 0: // only the envelope, or an alert (the v4 form)
			if i%8 == 4 {
				e.Kind = event.KindAlert
				e.Alert = &event.Alert{RuleID: text(7), Title: text(130), Severity: event.SeverityHigh, Tags: []string{text(3), ""}[:i%3],
					Group: []event.GroupValue{{Field: text(5), Value: text(200)}, {Field: "", Value: ""}}[:i%3],
					First: at.Add(-time.Second), Last: at, Count: i, Evidence: []string{text(26), text(26)}}
				if i%16 == 12 { // only an integer set: still the v4 form
					e.Alert = &event.Alert{Count: 1 << 40}
				}
			}
			if i%16 == 8 { // a credential event (the v5 form)
				e.Kind = event.KindCredential
				e.Identity = &event.Identity{Subject: text(12), TaskID: text(8)}
				e.Credential = &event.Credential{Action: event.CredentialIssued, JTI: text(22), Audience: text(140),
					Scope: []string{text(4), "", text(129)}[:i%4], KeyID: text(43), Expires: at.Add(5 * time.Minute), Reason: text(i % 3)}
			}
			if i%16 == 4 { // a backend's report (the v6 form)
				e.Kind = event.KindBackendRequest
				e.Identity = &event.Identity{Subject: text(12), SPIFFEID: text(30), TaskID: text(8)}
				e.Request = &event.Request{Method: "GET", Host: text(9), Path: "/" + text(i)}
				e.Backend = &event.Backend{JTI: text(22 * (i % 2)), Audience: text(140), Client: text(21), Status: 200 + i, Code: text(i % 3)}
			}
		case 1:
			e.Kind = event.KindRequest
			e.Identity = &event.Identity{Subject: text(12), Issuer: text(20), SPIFFEID: text(30), SessionID: text(8), TaskID: text(i % 2)}
			for range i % 4 {
				e.Identity.Chain = append(e.Identity.Chain, event.Actor{Subject: text(r.IntN(140)), Issuer: text(r.IntN(3))})
			}
			args, _ := json.Marshal(map[string]string{"q": text([]int{0, 10, 127, 128, 200, 16384, 20000}[i%7])})
			e.Request = &event.Request{Method: "POST", Host: text(9), Path: "/" + text(i), Query: text(i % 3), Resource: text(i % 2),
				Headers: map[string]string{"x-b": text(4), "x-a": text(130), "accept": ""}, RPCMethod: "tools/call", Tool: text(6),
				ArgsDigest: text(71), Args: args, BodyBytes: int64(r.IntN(1 << 20)), Destination: text(7), DataClass: text(i % 2)}
			if i%8 == 5 { // the columns of the v3 form; the others hash as v2
				e.Identity.SessionSource, e.Identity.TaskSource = text(6), text(i%3)
				e.Request.RPCKind, e.Request.Prompt, e.Request.Truncated = text(7), text(130), []string{text(4), ""}[:i%3]
			}
		case 2:
			e.Kind = event.KindDecision
			e.Decision = &event.Decision{Effect: event.EffectDeny, PolicyID: text(5), RuleID: text(9), PolicyHash: text(71),
				Reason: text(300), Code: text(i % 2), EvalNanos: -int64(i), Shadow: []string{text(3), "", text(129)}[:i%4]}
			if i%8 == 6 { // a decision naming its credential: the v5 form
				e.Decision.CredentialJTI = text(22)
			}
		case 3:
			e.Kind = event.KindCheckpoint
			e.Response = &event.Response{Status: 7 - i, DurationNs: 1 << 40, Bytes: -7, Outcome: []string{"", "client_gone"}[i%8/4]}
			e.Checkpoint = &event.Checkpoint{KeyID: text(16), Signature: text(86), Unrecorded: []uint64{0, 1, 256, 1 << 63}[:i%5]}
		}
		out = append(out, e)
	}
	return out
}

// TestScanLinksHashesRowsAsChainOfDoes holds the streaming hash of stored
// rows to chain.Of of the events they came from, for every field.
func TestScanLinksHashesRowsAsChainOfDoes(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	events := hashFixture()
	// A row longer than the reader's first buffer.
	events[5].Request.Args = json.RawMessage(`"` + strings.Repeat("x", 9<<20) + `"`)
	want := map[string]chain.Link{}
	var rows [][]any
	for _, e := range events {
		l := chain.LinkOf(e)
		l.Event = nil
		want[e.ID] = l
		rows = append(rows, ddl.EventRow(e, 1, t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}
	got := 0
	err := ch.ScanLinks(ctx, "1", func(l chain.Link) error {
		got++
		if l.Kind == event.KindCheckpoint {
			if l.Event == nil || chain.Of(l.Event) != l.Hash {
				t.Errorf("checkpoint %s not read whole as stored: %+v", l.ID, l.Event)
			}
			l.Event = nil
		}
		if w := want[l.ID]; l != w {
			t.Errorf("stored row %s:\n got %+v\nwant %+v", l.ID, l, w)
		}
		return nil
	})
	if err != nil || got != len(events) {
		t.Fatalf("read %d links, err %v; want %d", got, err, len(events))
	}
}
