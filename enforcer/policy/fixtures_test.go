package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

func TestRunFixtures(t *testing.T) {
	p, err := policy.Load("testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		wantPassed int
		wantFailed []string // names of the failing cases
	}{
		{name: "sample bundle passes", path: "testdata/bundle", wantPassed: 17},
		{name: "wrong expectations fail", path: "testdata/failing", wantPassed: 1, wantFailed: []string{"wrong effect", "wrong rule"}},
		{name: "one file", path: "testdata/failing/wrong_test.yaml", wantPassed: 1, wantFailed: []string{"wrong effect", "wrong rule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := policy.RunFixtures(context.Background(), p, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, c := range rep.Cases {
				if !c.Pass {
					failed = append(failed, c.Name)
					if c.Mismatch == "" || c.Line == 0 {
						t.Errorf("failed case %+v has no mismatch or line", c)
					}
				}
			}
			if rep.Passed != tt.wantPassed || !slices.Equal(failed, tt.wantFailed) || rep.OK() != (len(tt.wantFailed) == 0) {
				t.Fatalf("passed %d failed %v, want %d %v", rep.Passed, failed, tt.wantPassed, tt.wantFailed)
			}
		})
	}
}

func TestRunFixturesErrors(t *testing.T) {
	p, err := policy.Load("testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name, path, want string
	}{
		{"no fixtures in directory", t.TempDir(), "no fixture files"},
		{"unknown key", write("a_test.yaml", "- name: x\n  input: {tool: t, colour: red}\n  want: {effect: deny}\n"), "colour"},
		{"no name", write("b_test.yaml", "- input: {}\n  want: {effect: deny}\n"), "name is required"},
		{"bad effect", write("c_test.yaml", "- name: x\n  want: {effect: maybe}\n"), "want.effect"},
		{"empty", write("d_test.yaml", ""), "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.RunFixtures(context.Background(), p, tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	p, err := policy.Load("testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	in, err := policy.ParseInput([]byte(`{"tenant":"acme","session":"s","tool":"send_email","destination":"internet","data_class":"pii",
		"args":{"to":"a@acme.example","n":3,"x":1.5,"nested":{"k":[1]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Args["n"].(int64); !ok {
		t.Errorf("whole number decoded as %T, want int64", in.Args["n"])
	}
	x := policy.Explain(context.Background(), p, in)
	if x.Policy != "acme-tools" || x.File != "acme.yaml" || x.Default || x.Decision.RuleID != "allow-send-email" {
		t.Fatalf("explanation %+v", x)
	}
	var tried []string
	for _, r := range x.Rules {
		tried = append(tried, r.Rule+"="+r.Match+"/"+r.Condition)
	}
	want := []string{"deny-deep-delegation=false/", "audit-internet-egress=true/true", "allow-read-files=false/", "allow-fetch-internal=false/", "allow-send-email=true/true"}
	if !slices.Equal(tried, want) {
		t.Errorf("rules tried %v, want %v", tried, want)
	}
	// A dry run: explaining again and again never spends the budget.
	for range 5 {
		if d := policy.Explain(context.Background(), p, in).Decision; d.Effect != event.EffectAllow {
			t.Fatalf("explain spent the budget: %+v", d)
		}
	}
	b, err := json.Marshal(x)
	if err != nil || !strings.Contains(string(b), `"window":"1h0m0s"`) {
		t.Errorf("json %s, %v", b, err)
	}
	if _, err := policy.ParseInput([]byte(`{"tool":"x","toool":"y"}`)); err == nil {
		t.Error("ParseInput accepted an unknown field")
	}
}
