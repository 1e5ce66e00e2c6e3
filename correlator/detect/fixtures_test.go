package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFixturesFailWhenAlertsDiffer: a runner that cannot fail tests
// nothing; each kind of difference is reported.
func TestFixturesFailWhenAlertsDiffer(t *testing.T) {
	dir := t.TempDir()
	must := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must("burst.yaml", rule("burst", "match: effect == \"deny\"\ngroup_by: [actor]\nevent_count: {window: 1m, gte: 2}\n"))
	events := `
    start: 2026-03-01T10:00:00Z
    events:
      - {id: a, at: 0s, kind: decision, tenant: acme, identity: {sub: "user:x"}, request: {method: GET, host: h, path: /}, decision: {effect: deny}}
      - {id: b, at: 1s, kind: decision, tenant: acme, identity: {sub: "user:x"}, request: {method: GET, host: h, path: /}, decision: {effect: deny}}
`
	must("burst_test.yaml", `cases:
  - name: right`+events+`    want: [{rule: burst, group: {actor: "user:x"}, count: 2, evidence: [a, b]}]
  - name: wrong evidence`+events+`    want: [{rule: burst, evidence: [b, a]}]
  - name: wrong group`+events+`    want: [{rule: burst, group: {actor: "user:y"}}]
  - name: wrong count`+events+`    want: [{rule: burst, count: 3}]
  - name: missing alert`+events+`    want: [{rule: burst}, {rule: burst}]
  - name: unexpected alert`+events+`    want: []
`)
	rs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunFixtures(rs, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 1 || rep.Failed != 5 || !rep.Cases[0].Pass {
		t.Fatalf("passed %d failed %d: %+v", rep.Passed, rep.Failed, rep.Cases)
	}
	for i, want := range []string{"", "evidence", "group", "count", "missing", "unexpected"} {
		if !strings.Contains(rep.Cases[i].Mismatch, want) {
			t.Errorf("case %q: mismatch %q does not say %q", rep.Cases[i].Name, rep.Cases[i].Mismatch, want)
		}
	}
	// Events from a JSON lines file, strictly v1.
	must("events.jsonl", `{"v":1,"id":"j1","kind":"decision","time":"2026-03-01T10:00:00Z","tenant":"acme","instance":"i","seq":1,"request_id":"r1","identity":{"sub":"user:x"},"request":{"method":"GET","host":"h","path":"/"},"decision":{"effect":"deny","policy_id":"","rule_id":"","policy_hash":"","eval_ns":0}}

{"v":1,"id":"j2","kind":"decision","time":"2026-03-01T10:00:01Z","tenant":"acme","instance":"i","seq":2,"request_id":"r2","identity":{"sub":"user:x"},"request":{"method":"GET","host":"h","path":"/"},"decision":{"effect":"deny","policy_id":"","rule_id":"","policy_hash":"","eval_ns":0}}
`)
	must("burst_test.yaml", "cases:\n  - name: from a file\n    events_file: events.jsonl\n    want: [{rule: burst, evidence: [j1, j2]}]\n")
	if rep, err := RunFixtures(rs, dir, Options{}); err != nil || !rep.OK() || rep.Passed != 1 {
		t.Fatalf("events_file: %v %+v", err, rep)
	}
	must("events.jsonl", `{"v":2,"id":"x"}`+"\n")
	if rep, err := RunFixtures(rs, dir, Options{}); err != nil || rep.Failed != 1 || !strings.Contains(rep.Cases[0].Mismatch, "events.jsonl:1") {
		t.Fatalf("a v2 line in events_file: %v %+v", err, rep)
	}
	// A fixture naming a rule the set lacks, or an event with a misspelt
	// field, is a load error, not a pass.
	must("burst_test.yaml", "rules: [brust]\ncases: []\n")
	if _, err := RunFixtures(rs, dir, Options{}); err == nil {
		t.Fatal("a fixture for a missing rule ran")
	}
	must("burst_test.yaml", "cases:\n  - name: typo\n    start: 2026-03-01T10:00:00Z\n    events: [{at: 0s, kind: decision, tenant: acme, desicion: {effect: deny}}]\n")
	rep, err = RunFixtures(rs, dir, Options{})
	if err != nil || rep.Failed != 1 || !strings.Contains(rep.Cases[0].Mismatch, "desicion") {
		t.Fatalf("a misspelt event field: %v %+v", err, rep)
	}
}
