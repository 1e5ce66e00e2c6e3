// Package investigate answers an analyst's questions about the stored
// record, one function per `rampart investigate` verb: a session's
// timeline and delegation chains (and whether those events' chains
// verify), an agent's activity, one request, the blast radius of a
// compromised identity, a task, what one task credential touched. It reads ClickHouse through the forensic
// queries' access paths (event_keys, then events_raw by its sort key,
// each event once by id), so every answer is exact while redelivered
// copies are unmerged, and returns a Report that render prints as a
// table, JSON, CSV or a self-contained HTML page.
package investigate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Querier runs one query and returns its rows as text: a chstore.Client,
// or chDB in tests.
type Querier interface {
	Query(ctx context.Context, query string) ([][]string, error)
}

// Errors a verb returns, each with its own exit status in the CLI.
var (
	// ErrNotFound: the record holds nothing for what was asked.
	ErrNotFound = errors.New("investigate: no events found")
	// ErrBadInput: an argument is empty or malformed.
	ErrBadInput = errors.New("investigate: bad input")
	// ErrUnverified: the events were found, but their chains do not
	// verify: the report is printed, and must not be trusted.
	ErrUnverified = errors.New("investigate: the record of these events does not verify")
)

// Section is one table of a report.
type Section struct {
	Name    string     `json:"name"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Node is one identity of a delegation tree: the principal at the root,
// each agent it delegated to below it.
type Node struct {
	Name     string  `json:"name"`
	Children []*Node `json:"children,omitempty"`
}

// Range is a run of one chain (instance epoch) from seq From to To.
type Range struct {
	Instance string `json:"instance"`
	Epoch    string `json:"epoch"`
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	// First and Last are the times of the range's first and last event
	// in the report, which let the check read by time.
	First time.Time `json:"-"`
	Last  time.Time `json:"-"`
}

// Verification is whether the chains around a report's events verify.
type Verification struct {
	Ranges   []Range  `json:"ranges"`
	Events   int      `json:"events"`
	Findings []string `json:"findings"`
}

// Clean reports whether nothing was found wrong.
func (v *Verification) Clean() bool { return v != nil && len(v.Findings) == 0 }

// Verifier checks the stored chains over ranges (internal/verify over
// ClickHouse).
type Verifier interface {
	VerifyRanges(ctx context.Context, ranges []Range) (*Verification, error)
}

// Report is a verb's answer.
type Report struct {
	Title    string        `json:"title"`
	Sections []Section     `json:"sections"`
	Chains   []*Node       `json:"chains,omitempty"`
	Verified *Verification `json:"verified,omitempty"`
}

// Section returns the named section, or nil.
func (r *Report) Section(name string) *Section {
	for i := range r.Sections {
		if r.Sections[i].Name == name {
			return &r.Sections[i]
		}
	}
	return nil
}

// Store answers the verbs from one database.
type Store struct {
	q  Querier
	db string
}

// New returns a Store over database db.
func New(q Querier, db string) *Store { return &Store{q: q, db: db} }

func (s *Store) section(ctx context.Context, name string, columns []string, query string) (Section, error) {
	rows, err := s.q.Query(ctx, strings.ReplaceAll(query, "{db}", s.db))
	if err != nil {
		return Section{}, fmt.Errorf("investigate: %s: %w", name, err)
	}
	for _, r := range rows {
		if len(r) != len(columns) {
			return Section{}, fmt.Errorf("investigate: %s: %d columns, want %d", name, len(r), len(columns))
		}
	}
	if rows == nil {
		rows = [][]string{}
	}
	return Section{Name: name, Columns: columns, Rows: rows}, nil
}

func need(args ...string) error {
	for _, a := range args {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("%w: empty argument", ErrBadInput)
		}
	}
	return nil
}

// formatMicros prints a microsecond Unix time as UTC with microseconds.
func formatMicros(s string) string {
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return s
	}
	return time.UnixMicro(us).UTC().Format(timeLayout)
}

// timeLayout is how reports print event times: UTC, to the microsecond.
const timeLayout = "2006-01-02 15:04:05.000000"

// chainTree draws the distinct delegation chains ("a -> b -> c") as trees.
func chainTree(chains []string) []*Node {
	var roots []*Node
	child := func(list *[]*Node, name string) *Node {
		for _, n := range *list {
			if n.Name == name {
				return n
			}
		}
		n := &Node{Name: name}
		*list = append(*list, n)
		return n
	}
	for _, c := range chains {
		if c == "" {
			continue
		}
		list := &roots
		for _, name := range strings.Split(c, " -> ") {
			n := child(list, name)
			list = &n.Children
		}
	}
	return roots
}
