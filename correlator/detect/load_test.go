package detect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

func TestBadRuleFilesAreRefusedNamingFileAndRule(t *testing.T) {
	ok := rule("good", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")
	cases := []struct {
		name  string
		files map[string]string
		code  *Error
		want  []string // in the message
	}{
		{"unknown key", map[string]string{"a.yaml": rule("r1", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\nsevertiy: low\n")},
			ErrUnknownKey, []string{"a.yaml", `"r1"`, "severtiy"}},
		{"unknown key deep", map[string]string{"a.yaml": rule("r1", "match: \"true\"\nevent_count: {window: 1m, gte: 1, within: 2}\n")},
			ErrUnknownKey, []string{"a.yaml", `"r1"`, "within"}},
		{"bad window", map[string]string{"a.yaml": rule("r2", "match: \"true\"\nevent_count: {window: soon, gte: 1}\n")},
			ErrInvalidValue, []string{"a.yaml", `"r2"`, "soon"}},
		{"zero window", map[string]string{"a.yaml": rule("r2", "match: \"true\"\nevent_count: {window: 0s, gte: 1}\n")},
			ErrInvalidValue, []string{"a.yaml", `"r2"`, "window"}},
		{"window too long", map[string]string{"a.yaml": rule("r2", "match: \"true\"\nnew_value: {field: tool, lookback: 9999d}\n")},
			ErrInvalidValue, []string{`"r2"`, "lookback"}},
		{"duplicate id across files", map[string]string{"a.yaml": ok, "b.yaml": ok},
			ErrDuplicateRule, []string{"b.yaml", `"good"`, "a.yaml"}},
		{"duplicate key", map[string]string{"a.yaml": rule("r3", "match: \"true\"\nmatch: \"false\"\nevent_count: {window: 1m, gte: 1}\n")},
			ErrSyntax, []string{"a.yaml", `"r3"`}},
		{"cel type error", map[string]string{"a.yaml": rule("r4", "match: chain_depth == \"deep\"\nevent_count: {window: 1m, gte: 1}\n")},
			ErrCompile, []string{"a.yaml", `"r4"`, "match"}},
		{"cel unknown variable", map[string]string{"a.yaml": rule("r4", "match: toool == \"x\"\nevent_count: {window: 1m, gte: 1}\n")},
			ErrCompile, []string{`"r4"`, "toool"}},
		{"not bool", map[string]string{"a.yaml": rule("r5", "match: tool\nevent_count: {window: 1m, gte: 1}\n")},
			ErrNotBool, []string{`"r5"`, "bool"}},
		{"step type error", map[string]string{"a.yaml": rule("r6", "sequence:\n  window: 1m\n  steps:\n    - match: \"true\"\n    - match: status == \"200\"\n")},
			ErrCompile, []string{`"r6"`, "step 2"}},
		{"two correlations", map[string]string{"a.yaml": rule("r7", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\nnew_value: {field: tool, lookback: 1h}\n")},
			ErrCorrelation, []string{`"r7"`, "exactly one"}},
		{"no correlation", map[string]string{"a.yaml": rule("r7", "match: \"true\"\n")},
			ErrCorrelation, []string{`"r7"`}},
		{"gte and lte", map[string]string{"a.yaml": rule("r8", "match: \"true\"\nevent_count: {window: 1m, gte: 1, lte: 3}\n")},
			ErrCorrelation, []string{`"r8"`}},
		{"threshold too big", map[string]string{"a.yaml": rule("r8", "match: \"true\"\nevent_count: {window: 1m, gte: 100000000}\n")},
			ErrInvalidValue, []string{`"r8"`, "gte"}},
		{"group by a list", map[string]string{"a.yaml": rule("r9", "match: \"true\"\ngroup_by: [chain]\nevent_count: {window: 1m, gte: 1}\n")},
			ErrUnknownField, []string{`"r9"`, "chain"}},
		{"group by nothing known", map[string]string{"a.yaml": rule("r9", "match: \"true\"\ngroup_by: [sesion]\nevent_count: {window: 1m, gte: 1}\n")},
			ErrUnknownField, []string{`"r9"`, "sesion"}},
		{"value of a map", map[string]string{"a.yaml": rule("r9", "match: \"true\"\nvalue_count: {field: args, window: 1m, gte: 2}\n")},
			ErrUnknownField, []string{`"r9"`, "args"}},
		{"missing match", map[string]string{"a.yaml": rule("r10", "event_count: {window: 1m, gte: 1}\n")},
			ErrMissing, []string{`"r10"`, "match"}},
		{"bad severity", map[string]string{"a.yaml": strings.Replace(ok, "severity: high", "severity: urgent", 1)},
			ErrInvalidValue, []string{`"good"`, "urgent"}},
		{"bad tag", map[string]string{"a.yaml": strings.Replace(ok, "owasp-llm:LLM06", "LLM06", 1)},
			ErrInvalidValue, []string{`"good"`, "LLM06"}},
		{"one step", map[string]string{"a.yaml": rule("r11", "sequence:\n  window: 1m\n  steps:\n    - match: \"true\"\n")},
			ErrCorrelation, []string{`"r11"`, "steps"}},
		{"absence without expect", map[string]string{"a.yaml": rule("r12", "match: \"true\"\nabsence: {window: 1h}\n")},
			ErrMissing, []string{`"r12"`, "expect"}},
		{"no_prior without prior", map[string]string{"a.yaml": rule("r14", "match: \"true\"\ngroup_by: [request_id]\nno_prior: {window: 1h}\n")},
			ErrMissing, []string{`"r14"`, "prior"}},
		{"no_prior without a window", map[string]string{"a.yaml": rule("r14", "match: \"true\"\nno_prior: {prior: \"true\"}\n")},
			ErrInvalidValue, []string{`"r14"`, "window"}},
		{"gap without instance and epoch", map[string]string{"a.yaml": rule("r13", "match: \"true\"\ngroup_by: [instance]\ngap: {grace: 1m, window: 1h}\n")},
			ErrInvalidValue, []string{`"r13"`, "epoch"}},
		{"gap grace beyond its window", map[string]string{"a.yaml": rule("r13", "match: \"true\"\ngroup_by: [instance, epoch]\ngap: {grace: 2h, window: 1h}\n")},
			ErrInvalidValue, []string{`"r13"`, "grace"}},
		{"the engine's own id", map[string]string{"a.yaml": rule(StateExhaustedRule, "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")},
			ErrInvalidValue, []string{"a.yaml", StateExhaustedRule}},
		{"not yaml", map[string]string{"a.yaml": "id: [\n"}, ErrSyntax, []string{"a.yaml"}},
		{"empty set", map[string]string{"a_test.yaml": "cases: []\n"}, ErrEmpty, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, src := range c.files {
				fsys[n] = &fstest.MapFile{Data: []byte(src)}
			}
			_, err := LoadFS(fsys, "dir")
			if err == nil {
				t.Fatal("loaded")
			}
			if !errors.Is(err, c.code) {
				t.Fatalf("error %v, want code %s", err, c.code.Code)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRuleSetHashAndMerge(t *testing.T) {
	a := rule("a", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")
	b := rule("b", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")
	s1 := load(t, map[string]string{"a.yaml": a, "b.yaml": b, "b_test.yaml": "not even yaml: ["})
	s2 := load(t, map[string]string{"b.yaml": b, "a.yaml": a})
	if s1.Hash() != s2.Hash() || !strings.HasPrefix(s1.Hash(), "sha256:") {
		t.Fatalf("hashes %s %s: fixtures or order changed the hash", s1.Hash(), s2.Hash())
	}
	s3 := load(t, map[string]string{"a.yaml": a, "b.yaml": b + "\n"})
	if s3.Hash() == s1.Hash() {
		t.Fatal("a changed file kept the hash")
	}
	if _, err := Merge(s1, s2); !errors.Is(err, ErrDuplicateRule) {
		t.Fatalf("merge of sets sharing ids: %v", err)
	}
	c := load(t, map[string]string{"c.yaml": rule("c", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")})
	m, err := Merge(s1, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Rules()); got != 3 || m.Rule("c") == nil || m.Hash() == s1.Hash() {
		t.Fatalf("merged %d rules, hash %s", got, m.Hash())
	}
	// Several rules in one file, as YAML documents.
	multi := load(t, map[string]string{"ab.yaml": a + "---\n" + b})
	if len(multi.Rules()) != 2 {
		t.Fatalf("%d rules from a two-document file", len(multi.Rules()))
	}
}

func TestWatchKeepsReportingAndTheLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	// Each version is written beside and renamed into place, as a
	// deployment swaps a file: a poll must not see one half-written (it
	// would report that too, correctly, and this test counts reports).
	write := func(src string) {
		t.Helper()
		tmp := filepath.Join(t.TempDir(), "r.yaml")
		if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "r.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	good1 := rule("r", "match: \"true\"\nevent_count: {window: 1m, gte: 1}\n")
	good2 := rule("r", "match: \"true\"\nevent_count: {window: 2m, gte: 1}\n")
	write(good1)
	type result struct {
		rs  *RuleSet
		err error
	}
	var mu sync.Mutex
	var got []result
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, dir, 5*time.Millisecond, func(rs *RuleSet, err error) {
			mu.Lock()
			got = append(got, result{rs, err})
			mu.Unlock()
		})
	}()
	waitFor := func(n int) []result {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(got) >= n {
				r := append([]result(nil), got...)
				mu.Unlock()
				return r
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatalf("fewer than %d loads", n)
		return nil
	}
	r := waitFor(1)
	if r[0].err != nil || r[0].rs.Rule("r") == nil {
		t.Fatalf("first load: %+v", r[0])
	}
	write(good1 + "severtiy: low\n")
	r = waitFor(2)
	if r[1].err == nil || !errors.Is(r[1].err, ErrUnknownKey) || r[1].rs != nil {
		t.Fatalf("bad change: %+v", r[1])
	}
	write(good2)
	r = waitFor(3)
	if r[2].err != nil || r[2].rs.Rule("r").Window != 2*time.Minute {
		t.Fatalf("fixed change: %+v", r[2])
	}
	time.Sleep(30 * time.Millisecond) // polls that find nothing new report nothing
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d reports, want 3: an unchanged directory is not reported again", len(got))
	}
}
