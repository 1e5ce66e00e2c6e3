package detect

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// FuzzRuleFile: any rule file either loads or is refused with an *Error,
// and a rule that loads runs on events of every kind without panicking.
func FuzzRuleFile(f *testing.F) {
	f.Add([]byte(rule("a", "match: effect == \"deny\"\ngroup_by: [actor]\nevent_count: {window: 1m, gte: 2}\n")))
	f.Add([]byte(rule("b", trifecta)))
	f.Add([]byte(rule("c", "match: \"true\"\ngroup_by: [instance, epoch]\ngap: {grace: 1s, window: 1m}\n")))
	f.Add([]byte(rule("d", "match: tool == \"mint\"\nabsence: {expect: tool == \"revoke\", window: 1s}\n")))
	f.Add([]byte(rule("e", "match: \"true\"\nnew_value: {field: seq, lookback: 1h}\n")))
	f.Add([]byte(rule("f", "match: \"true\"\nevent_count: {window: 1s, lte: 1}\n---\n"+rule("g", "match: size(args) > 0\nvalue_count: {field: tool, window: 1m, gte: 2}\n"))))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := LoadFS(fstest.MapFS{"r.yaml": {Data: src}}, "fuzz")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		e := NewEngine(rs, Options{MaxGroupsPerRule: 50, MaxEvidence: 3})
		defer e.Close()
		for i, k := range []event.Kind{event.KindDecision, event.KindResponse, event.KindCheckpoint, event.KindPolicy, event.KindToolSchema, event.KindAlert, "future"} {
			x := ev(time.Duration(i)*time.Second, tool("mint"), deny, actorChain("agent:a", "agent:a"))
			x.Kind, x.Seq, x.Epoch = k, uint64(i*2+1), "ep"
			x.Request.Args = []byte(`{"a": [1, {"b": null}]}`)
			x.Checkpoint = &event.Checkpoint{Unrecorded: []uint64{2, 4}}
			x.Alert = &event.Alert{RuleID: "other", Severity: event.SeverityLow}
			for _, a := range e.Observe(x) {
				if a.Kind != event.KindAlert || a.Alert == nil || len(a.Alert.Evidence) == 0 || len(a.Alert.Evidence) > 3 {
					t.Fatalf("malformed alert %+v", a)
				}
			}
		}
		e.Advance(t0.Add(500 * 24 * time.Hour))
	})
}
