package detect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"gopkg.in/yaml.v3"
)

// Fixtures are rule regression tests, as Sigma's and Panther's are: files
// named *_test.yaml (or *_test.yml) beside the rules, each a list of
// cases of events in and the alerts they must raise, no more and no less.
//
//	rules: [lethal-trifecta]      # whose alerts are compared; default every rule
//	cases:
//	  - name: confidential read then internet send
//	    start: 2026-03-01T10:00:00Z
//	    events:                   # v1 events as YAML; or events_file: x.jsonl
//	      - {id: e1, at: 0s, kind: decision, tenant: acme, identity: {session_id: s1}, ...}
//	      - {id: e2, at: 30s, kind: decision, tenant: acme, ...}
//	    advance: 2026-03-01T11:00:00Z   # optional: move the clock after the events
//	    want:
//	      - {rule: lethal-trifecta, group: {subject: "user:alice"}, count: 2, evidence: [e1, e2]}
//
// A case's inventory (optional) is an agent inventory, in the inventory
// file's form ({agents: [...]}), that the case's events are looked up in
// as the live correlator looks them up: without one, rules see no
// inventory (inventory_loaded false).
//
// In YAML events, v defaults to 1, instance to "fixture", seq to the
// event's position, id to e<position>, and "at" (a duration after the
// case's start) stands for time; events_file names a file of JSON lines
// of v1 events, read strictly, relative to the fixture. Each case runs
// on a fresh engine, twice: the two runs must give the same alert ids.

// fixtureFile is one fixture file as written.
type fixtureFile struct {
	Rules []string      `yaml:"rules"`
	Cases []fixtureCase `yaml:"cases"`
}

type fixtureCase struct {
	Name       string      `yaml:"name"`
	Start      time.Time   `yaml:"start"`
	Events     []yaml.Node `yaml:"events"`
	EventsFile string      `yaml:"events_file"`
	Advance    time.Time   `yaml:"advance"`
	Inventory  yaml.Node   `yaml:"inventory"`
	Want       []WantAlert `yaml:"want"`
	line       int
}

// WantAlert is an alert a case expects. Rule is required; Group, Count,
// Evidence and Time (the alert's: a lapse's is its deadline) are
// compared when given.
type WantAlert struct {
	Rule     string            `yaml:"rule" json:"rule"`
	Group    map[string]string `yaml:"group" json:"group,omitempty"`
	Count    int               `yaml:"count" json:"count,omitempty"`
	Evidence []string          `yaml:"evidence" json:"evidence,omitempty"`
	Time     time.Time         `yaml:"time" json:"time,omitzero"`
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	File     string      `json:"file"`
	Line     int         `json:"line"`
	Name     string      `json:"name"`
	Pass     bool        `json:"pass"`
	Mismatch string      `json:"mismatch,omitempty"`
	Got      []WantAlert `json:"got"`
}

// Report is the outcome of a fixture run.
type Report struct {
	Cases  []CaseResult `json:"cases"`
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
}

// OK reports whether every case passed.
func (r Report) OK() bool { return r.Failed == 0 }

// IsFixtureFile reports whether name is a fixture file.
func IsFixtureFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// FixtureFiles lists the fixture files at path: path itself when it is a
// file, else the fixture files in the directory (at least one).
func FixtureFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && IsFixtureFile(e.Name()) {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, &Error{Code: CodeFixture, File: path, Msg: "no fixture files (*_test.yaml)"}
	}
	return files, nil
}

// RunFixtures runs the fixture files at path against rs with opts. The
// error reports fixtures that cannot be read or decoded, or that name a
// rule rs does not have; failing cases are in the Report.
func RunFixtures(rs *RuleSet, path string, opts Options) (Report, error) {
	files, err := FixtureFiles(path)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	for _, f := range files {
		ff, err := readFixture(f)
		if err != nil {
			return rep, err
		}
		for _, id := range ff.Rules {
			if rs.Rule(id) == nil {
				return rep, &Error{Code: CodeFixtureUnused, File: f, Rule: id, Msg: "the fixture names a rule the set does not have"}
			}
		}
		for _, c := range ff.Cases {
			res := runCase(rs, f, ff.Rules, &c, opts)
			if res.Pass {
				rep.Passed++
			} else {
				rep.Failed++
			}
			rep.Cases = append(rep.Cases, res)
		}
	}
	return rep, nil
}

func readFixture(file string) (*fixtureFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: file, Err: err}
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{Code: CodeRead, File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Code: CodeFixture, File: file, Line: yamlLine(err), Msg: yamlMsg(err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var ff fixtureFile
	if err := dec.Decode(&ff); err != nil {
		return nil, &Error{Code: CodeFixture, File: file, Line: yamlLine(err), Msg: yamlMsg(err)}
	}
	// Case lines, for the report.
	if len(root.Content) == 1 {
		for i := 0; i+1 < len(root.Content[0].Content); i += 2 {
			if k, v := root.Content[0].Content[i], root.Content[0].Content[i+1]; k.Value == "cases" && v.Kind == yaml.SequenceNode {
				for j := range min(len(v.Content), len(ff.Cases)) {
					ff.Cases[j].line = v.Content[j].Line
				}
			}
		}
	}
	for i := range ff.Cases {
		c := &ff.Cases[i]
		if c.Name == "" {
			return nil, &Error{Code: CodeFixture, File: file, Line: c.line, Msg: fmt.Sprintf("case %d: name is required", i+1)}
		}
		for _, w := range c.Want {
			if w.Rule == "" {
				return nil, &Error{Code: CodeFixture, File: file, Line: c.line, Msg: fmt.Sprintf("case %q: every wanted alert needs its rule", c.Name)}
			}
		}
	}
	return &ff, nil
}

// caseEvents decodes a case's events, YAML ones then the events file's.
func caseEvents(file string, c *fixtureCase) ([]*event.Event, error) {
	var evs []*event.Event
	for i := range c.Events {
		n := &c.Events[i]
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			return nil, fmt.Errorf("event %d (line %d): %v", i+1, n.Line, err)
		}
		pos := len(evs) + 1
		setDefault(m, "v", event.Version)
		setDefault(m, "instance", "fixture")
		setDefault(m, "seq", pos)
		setDefault(m, "id", fmt.Sprintf("e%d", pos))
		if at, ok := m["at"]; ok {
			if c.Start.IsZero() {
				return nil, fmt.Errorf("event %d (line %d): at needs the case's start", i+1, n.Line)
			}
			d, err := parseDuration(fmt.Sprint(at))
			if err != nil {
				return nil, fmt.Errorf("event %d (line %d): at: %v", i+1, n.Line, err)
			}
			delete(m, "at")
			m["time"] = c.Start.Add(d).UTC().Format(time.RFC3339Nano)
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("event %d (line %d): %v", i+1, n.Line, err)
		}
		ev, err := decodeStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("event %d (line %d): %v", i+1, n.Line, err)
		}
		evs = append(evs, ev)
	}
	if c.EventsFile != "" {
		path := c.EventsFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(file), path)
		}
		more, err := ReadEvents(path)
		if err != nil {
			return nil, err
		}
		evs = append(evs, more...)
	}
	return evs, nil
}

// caseInventory parses a case's inventory: nil without one.
func caseInventory(c *fixtureCase) (func(*event.Event) ddl.Agent, error) {
	if c.Inventory.Kind == 0 {
		return nil, nil
	}
	data, err := yaml.Marshal(&c.Inventory)
	if err != nil {
		return nil, fmt.Errorf("inventory (line %d): %v", c.Inventory.Line, err)
	}
	ix, err := inventory.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("inventory (line %d): %v", c.Inventory.Line, err)
	}
	return ix.Agent, nil
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// decodeStrict decodes one v1 event, refusing unknown fields (a fixture
// with a misspelt field would test nothing), and validates it.
func decodeStrict(raw []byte) (*event.Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ev event.Event
	if err := dec.Decode(&ev); err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return &ev, nil
}

// ReadEvents reads a file of JSON lines of v1 events (blank lines
// skipped), strictly.
func ReadEvents(path string) ([]*event.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), MaxFileBytes)
	var evs []*event.Event
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, err := decodeStrict(b)
		if err != nil {
			return nil, &Error{Code: CodeFixture, File: path, Line: line, Msg: "not a v1 event", Err: err}
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	return evs, nil
}

// Run feeds events to a fresh engine on rs and returns every alert,
// Advancing to advance (when set) after the last event.
func Run(rs *RuleSet, evs []*event.Event, advance time.Time, opts Options) []*event.Event {
	return RunAgents(rs, evs, nil, advance, opts)
}

// RunAgents is Run with each event's agent as agent says (none when agent
// is nil), as Engine.ObserveAgent takes it.
func RunAgents(rs *RuleSet, evs []*event.Event, agent func(*event.Event) ddl.Agent, advance time.Time, opts Options) []*event.Event {
	e := NewEngine(rs, opts)
	defer e.Close()
	var out []*event.Event
	for _, ev := range evs {
		var a ddl.Agent
		if agent != nil {
			a = agent(ev)
		}
		out = append(out, e.ObserveAgent(ev, a)...)
	}
	if !advance.IsZero() {
		out = append(out, e.Advance(advance)...)
	}
	return out
}

func runCase(rs *RuleSet, file string, only []string, c *fixtureCase, opts Options) CaseResult {
	res := CaseResult{File: file, Line: c.line, Name: c.Name}
	evs, err := caseEvents(file, c)
	if err != nil {
		res.Mismatch = err.Error()
		return res
	}
	agent, err := caseInventory(c)
	if err != nil {
		res.Mismatch = err.Error()
		return res
	}
	got := RunAgents(rs, evs, agent, c.Advance, opts)
	again := RunAgents(rs, evs, agent, c.Advance, opts)
	if !slices.EqualFunc(got, again, func(a, b *event.Event) bool { return a.ID == b.ID }) {
		res.Mismatch = "two runs of the same events gave different alert ids"
		return res
	}
	var alerts []*event.Event
	for _, a := range got {
		published := *a // with the fields the publisher fills
		published.Instance, published.Seq = "fixture-correlator", 1
		if err := published.Validate(); err != nil {
			res.Mismatch = fmt.Sprintf("alert %s is not a valid event: %v", a.ID, err)
			return res
		}
		if len(only) == 0 || slices.Contains(only, a.Alert.RuleID) {
			alerts = append(alerts, a)
		}
	}
	for _, a := range alerts {
		res.Got = append(res.Got, summarize(a))
	}
	res.Mismatch = compareAlerts(c.Want, res.Got)
	res.Pass = res.Mismatch == ""
	return res
}

func summarize(a *event.Event) WantAlert {
	w := WantAlert{Rule: a.Alert.RuleID, Count: a.Alert.Count, Evidence: a.Alert.Evidence, Time: a.Time}
	if len(a.Alert.Group) > 0 {
		w.Group = map[string]string{}
		for _, g := range a.Alert.Group {
			w.Group[g.Field] = g.Value
		}
	}
	return w
}

// compareAlerts matches wanted alerts to those got, in order: the i-th
// wanted alert of a rule against the i-th alert of that rule.
func compareAlerts(want, got []WantAlert) string {
	var problems []string
	byRule := func(ws []WantAlert) map[string][]WantAlert {
		m := map[string][]WantAlert{}
		for _, w := range ws {
			m[w.Rule] = append(m[w.Rule], w)
		}
		return m
	}
	wm, gm := byRule(want), byRule(got)
	var rules []string
	for r := range wm {
		rules = append(rules, r)
	}
	for r := range gm {
		if _, ok := wm[r]; !ok {
			rules = append(rules, r)
		}
	}
	slices.Sort(rules)
	for _, r := range rules {
		ws, gs := wm[r], gm[r]
		for i := range max(len(ws), len(gs)) {
			switch {
			case i >= len(gs):
				problems = append(problems, fmt.Sprintf("%s: alert %d missing (want %s)", r, i+1, show(ws[i])))
			case i >= len(ws):
				problems = append(problems, fmt.Sprintf("%s: unexpected alert %s", r, show(gs[i])))
			default:
				w, g := ws[i], gs[i]
				if w.Group != nil && !mapsEqual(w.Group, g.Group) {
					problems = append(problems, fmt.Sprintf("%s: alert %d group %v, want %v", r, i+1, g.Group, w.Group))
				}
				if w.Count != 0 && w.Count != g.Count {
					problems = append(problems, fmt.Sprintf("%s: alert %d count %d, want %d", r, i+1, g.Count, w.Count))
				}
				if w.Evidence != nil && !slices.Equal(w.Evidence, g.Evidence) {
					problems = append(problems, fmt.Sprintf("%s: alert %d evidence %v, want %v", r, i+1, g.Evidence, w.Evidence))
				}
				if !w.Time.IsZero() && !w.Time.Equal(g.Time) {
					problems = append(problems, fmt.Sprintf("%s: alert %d time %s, want %s", r, i+1, g.Time.Format(time.RFC3339Nano), w.Time.Format(time.RFC3339Nano)))
				}
			}
		}
	}
	return strings.Join(problems, "; ")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func show(w WantAlert) string {
	return fmt.Sprintf("{group: %v, count: %d, evidence: %v}", w.Group, w.Count, w.Evidence)
}
