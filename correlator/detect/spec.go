package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The YAML form of a rule. A rule file holds one rule, or several as
// YAML documents separated by "---". Decoding is strict: an unknown key,
// at any depth, is an error, as is a duplicate key.
//
//	id: probing-denial-burst
//	title: Burst of denials by one actor
//	description: ...
//	severity: medium
//	tags: [owasp-agentic:T2, owasp-llm:LLM06]
//	tenant: acme                 # optional: the rule sees only this tenant
//	match: kind == "decision" && effect == "deny"
//	group_by: [actor]
//	event_count: {window: 1m, gte: 10}
//
// An absence may give each group its own deadline, read from the event
// that opens it; the window is then the longest any group waits:
//
//	absence:
//	  expect: kind == "credential" && credential_action == "revoked"
//	  deadline: credential_expires + duration("10m")
//	  window: 24h

// ruleSpec is one rule as written.
type ruleSpec struct {
	ID          string   `yaml:"id" json:"id"`
	Title       string   `yaml:"title" json:"title"`
	Description string   `yaml:"description" json:"description"`
	Severity    string   `yaml:"severity" json:"severity"`
	Tags        []string `yaml:"tags" json:"tags"`
	Tenant      string   `yaml:"tenant" json:"tenant,omitempty"`
	Match       string   `yaml:"match" json:"match,omitempty"`
	GroupBy     []string `yaml:"group_by" json:"group_by"`

	EventCount *eventCountSpec `yaml:"event_count" json:"event_count,omitempty"`
	ValueCount *valueCountSpec `yaml:"value_count" json:"value_count,omitempty"`
	Sequence   *stepsSpec      `yaml:"sequence" json:"sequence,omitempty"`
	AllOf      *stepsSpec      `yaml:"all_of" json:"all_of,omitempty"`
	NewValue   *newValueSpec   `yaml:"new_value" json:"new_value,omitempty"`
	Absence    *absenceSpec    `yaml:"absence" json:"absence,omitempty"`
	Gap        *gapSpec        `yaml:"gap" json:"gap,omitempty"`
	NoPrior    *noPriorSpec    `yaml:"no_prior" json:"no_prior,omitempty"`

	line int
}

// eventCountSpec: at least Gte, or at most Lte, matching events per group
// within Window. Exactly one of Gte and Lte.
type eventCountSpec struct {
	Window duration `yaml:"window" json:"window"`
	Gte    *int     `yaml:"gte" json:"gte,omitempty"`
	Lte    *int     `yaml:"lte" json:"lte,omitempty"`
}

// valueCountSpec: at least Gte distinct values of Field per group within
// Window.
type valueCountSpec struct {
	Field  string   `yaml:"field" json:"field"`
	Window duration `yaml:"window" json:"window"`
	Gte    int      `yaml:"gte" json:"gte"`
}

// stepsSpec: the steps of a sequence (in order) or an all_of (any
// order), all within Window.
type stepsSpec struct {
	Window duration   `yaml:"window" json:"window"`
	Steps  []stepSpec `yaml:"steps" json:"steps"`
}

type stepSpec struct {
	Name  string `yaml:"name" json:"name,omitempty"`
	Match string `yaml:"match" json:"match"`
}

// newValueSpec: Field's value not seen for the group in Lookback.
type newValueSpec struct {
	Field    string   `yaml:"field" json:"field"`
	Lookback duration `yaml:"lookback" json:"lookback"`
}

// absenceSpec: a match not followed by an Expect event of the same group
// within Window, or, with Deadline, by the time Deadline gives.
type absenceSpec struct {
	Expect string `yaml:"expect" json:"expect"`
	// Deadline, optional, is a CEL timestamp expression over the event
	// that opens the group (credential_expires + duration("10m")): the
	// group's own deadline, within [the event's time, its time + Window].
	// When it fails to evaluate the group waits the Window, counted in
	// rampart.detect.eval_errors.
	Deadline string   `yaml:"deadline" json:"deadline,omitempty"`
	Window   duration `yaml:"window" json:"window"`
}

// noPriorSpec: a match with no Prior event of the same group within
// Window before it; a match whose group has an empty value has none.
type noPriorSpec struct {
	Prior  string   `yaml:"prior" json:"prior"`
	Window duration `yaml:"window" json:"window"`
}

// gapSpec: sequence numbers missing from a group's events (an enforcer
// instance's epoch) for longer than Grace; a group idle for Window is
// forgotten.
type gapSpec struct {
	Grace  duration `yaml:"grace" json:"grace"`
	Window duration `yaml:"window" json:"window"`
}

// duration is a time.Duration written as Go writes it (90s, 10m, 1h30m)
// or in whole days (7d), as Sigma's timespans are.
type duration time.Duration

var daysRE = regexp.MustCompile(`^([0-9]{1,4})d$`)

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string such as 10m or 7d", n.Line)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

func parseDuration(s string) (time.Duration, error) {
	if m := daysRE.FindStringSubmatch(s); m != nil {
		days, _ := strconv.Atoi(m[1])
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a Go duration (90s, 10m, 1h) or days (7d)", errBadDuration, s)
	}
	return v, nil
}

const errBadDuration = "bad duration"

// MaxFileBytes bounds one rule or fixture file.
const MaxFileBytes = 1 << 20

// decodeRules parses one rule file into its rules.
func decodeRules(file string, data []byte) ([]*ruleSpec, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Code: CodeRead, File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	// First pass: the documents as nodes, for each rule's id and line,
	// so a strict decoding error below can name its rule.
	type docInfo struct {
		id   string
		line int
	}
	var docs []docInfo
	loose := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := loose.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &Error{Code: CodeSyntax, File: file, Line: yamlLine(err), Msg: yamlMsg(err)}
		}
		info := docInfo{line: n.Line}
		if len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
			m := n.Content[0]
			info.line = m.Line
			for i := 0; i+1 < len(m.Content); i += 2 {
				if m.Content[i].Value == "id" && m.Content[i+1].Kind == yaml.ScalarNode {
					info.id = m.Content[i+1].Value
				}
			}
		}
		docs = append(docs, info)
	}
	if len(docs) == 0 {
		return nil, &Error{Code: CodeMissing, File: file, Msg: "no rule in file"}
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	rules := make([]*ruleSpec, 0, len(docs))
	for _, d := range docs {
		r := &ruleSpec{line: d.line}
		if err := strict.Decode(r); err != nil {
			code := CodeSyntax
			switch msg := err.Error(); {
			case strings.Contains(msg, "not found in type"):
				code = CodeUnknownKey
			case strings.Contains(msg, errBadDuration):
				code = CodeInvalidValue
			}
			return nil, &Error{Code: code, File: file, Line: yamlLine(err), Rule: d.id, Msg: yamlMsg(err)}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

var yamlLineRE = regexp.MustCompile(`line ([0-9]+):`)

// yamlLine is the first line number a yaml.v3 error names, 0 if none.
func yamlLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		l, _ := strconv.Atoi(m[1])
		return l
	}
	return 0
}

// yamlMsg rewords yaml.v3's messages in the rule's terms: "field x not
// found in type detect.ruleSpec" becomes "unknown key x".
func yamlMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = yamlLineRE.ReplaceAllString(msg, "")
	msg = regexp.MustCompile(`field (\S+) not found in type \S+`).ReplaceAllString(msg, "unknown key $1")
	msg = strings.ReplaceAll(msg, "\n ", ";")
	return strings.TrimSpace(msg)
}
