package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rampart-io/rampart/schema/event"
	"gopkg.in/yaml.v3"
)

// Fixtures are policy tests, like `opa test`: YAML files named *_test.yaml
// (or *_test.yml) holding a list of cases, each an input and the decision
// it must get.
//
//	- name: planner may search
//	  input: {tenant: acme, tool: search, actor: agent:planner, chain: [agent:planner]}
//	  want: {effect: allow, rule_id: allow-search}
//
// The cases of a file run in order against one fresh set of budgets, so a
// file can spend a budget and expect the next call to be denied.

// Case is one fixture case.
type Case struct {
	Name  string `yaml:"name"`
	Input Input  `yaml:"input"`
	Want  Want   `yaml:"want"`
}

// Want is what a case expects. Effect is required; the other fields are
// checked only when set.
type Want struct {
	Effect event.Effect `yaml:"effect" json:"effect"`
	RuleID string       `yaml:"rule_id" json:"rule_id,omitempty"`
	Code   string       `yaml:"code" json:"code,omitempty"`
	// Shadow, when present (even empty), must equal the decision's list.
	Shadow *[]string `yaml:"shadow" json:"shadow,omitempty"`
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Name     string   `json:"name"`
	Pass     bool     `json:"pass"`
	Want     Want     `json:"want"`
	Got      Decision `json:"got"`
	Mismatch string   `json:"mismatch,omitempty"` // what differs, when failed
}

// Report is the outcome of a fixture run.
type Report struct {
	Cases  []CaseResult `json:"cases"`
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
}

// OK reports whether every case passed.
func (r Report) OK() bool { return r.Failed == 0 }

// FixtureFiles lists the fixture files at path: path itself when it is a
// file, else the *_test.yaml and *_test.yml files in the directory.
func FixtureFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && isFixtureFile(e.Name()) {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("policy: no fixture files (*_test.yaml) in %s", path)
	}
	return files, nil
}

// RunFixtures runs the fixture files at path (see FixtureFiles) against
// p. The error reports fixtures that cannot be read or parsed; failing
// cases are in the Report.
func RunFixtures(ctx context.Context, p *Policy, path string) (Report, error) {
	files, err := FixtureFiles(path)
	if err != nil {
		return Report{}, err
	}
	var r Report
	for _, f := range files {
		cases, lines, err := readFixture(f)
		if err != nil {
			return r, err
		}
		budgets := NewBudgets(BudgetLimits{}) // per file: cases may spend a budget in order
		for i, c := range cases {
			got := p.decide(ctx, &c.Input, budgets, nil)
			res := CaseResult{File: f, Line: lines[i], Name: c.Name, Want: c.Want, Got: got}
			res.Mismatch = mismatch(c.Want, got)
			res.Pass = res.Mismatch == ""
			if res.Pass {
				r.Passed++
			} else {
				r.Failed++
			}
			r.Cases = append(r.Cases, res)
		}
	}
	return r, nil
}

func mismatch(w Want, d Decision) string {
	var diffs []string
	if d.Effect != w.Effect {
		diffs = append(diffs, fmt.Sprintf("effect %s, want %s", d.Effect, w.Effect))
	}
	if w.RuleID != "" && d.RuleID != w.RuleID {
		diffs = append(diffs, fmt.Sprintf("rule %s, want %s", d.RuleID, w.RuleID))
	}
	if w.Code != "" && d.Code != w.Code {
		diffs = append(diffs, fmt.Sprintf("code %q, want %q", d.Code, w.Code))
	}
	if w.Shadow != nil && !slices.Equal(d.Shadow, *w.Shadow) {
		diffs = append(diffs, fmt.Sprintf("shadow %v, want %v", d.Shadow, *w.Shadow))
	}
	return strings.Join(diffs, "; ")
}

// readFixture decodes a fixture file strictly, with each case's line.
func readFixture(path string) ([]Case, []int, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cases []Case
	if err := dec.Decode(&cases); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("policy fixture %s: empty file", path)
		}
		return nil, nil, fmt.Errorf("policy fixture %s: %w", path, err)
	}
	// Decoded again as nodes for the line of each case; the strict decode
	// above has already checked the shape.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("policy fixture %s: %w", path, err)
	}
	lines := make([]int, len(cases))
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.SequenceNode && len(doc.Content[0].Content) == len(cases) {
		for i, n := range doc.Content[0].Content {
			lines[i] = n.Line
		}
	}
	for i := range cases {
		for k, v := range cases[i].Input.Args {
			cases[i].Input.Args[k] = normalize(v)
		}
	}
	for i, c := range cases {
		switch {
		case c.Name == "":
			return nil, nil, fmt.Errorf("policy fixture %s:%d: case %d: name is required", path, lines[i], i+1)
		case c.Want.Effect != event.EffectAllow && c.Want.Effect != event.EffectDeny:
			return nil, nil, fmt.Errorf("policy fixture %s:%d: case %q: want.effect must be allow or deny", path, lines[i], c.Name)
		}
	}
	return cases, lines, nil
}

// ParseInput decodes an input document (JSON or YAML, the field names of
// Input), refusing unknown fields. Whole numbers in args become int64 and
// others float64, as the enforcer's MCP parser makes them.
func ParseInput(data []byte) (*Input, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var in Input
	if err := dec.Decode(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("policy: input: empty")
		}
		return nil, fmt.Errorf("policy: input: %w", err)
	}
	for k, v := range in.Args {
		in.Args[k] = normalize(v)
	}
	return &in, nil
}

// normalize turns YAML's int into int64 throughout v, as CEL and the
// enforcer expect.
func normalize(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
	}
	return v
}
