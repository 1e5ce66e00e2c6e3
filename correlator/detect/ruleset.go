package detect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/rampart-io/rampart/correlator/rules"
)

// RuleSet is a validated set of rules with distinct ids.
type RuleSet struct {
	rules []*Rule
	files []ruleFile
	hash  string
}

// ruleFile is one file of a set: its name in the directory (what the
// hash covers, so a pack hashes the same wherever it is loaded from) and
// the path errors name.
type ruleFile struct {
	name, path string
	data       []byte
}

// Hash is sha256 over the set's files (their names in their directory),
// sorted by name then content,
// each name and content length-prefixed: "sha256:<hex>". It names the
// rules that produced an alert, as a policy hash names the policy.
func (rs *RuleSet) Hash() string { return rs.hash }

// Rules returns the rules, sorted by id.
func (rs *RuleSet) Rules() []*Rule { return slices.Clone(rs.rules) }

// Rule returns the rule with the given id, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	i, ok := slices.BinarySearchFunc(rs.rules, id, func(r *Rule, id string) int { return strings.Compare(r.ID, id) })
	if !ok {
		return nil
	}
	return rs.rules[i]
}

// IsRuleFile reports whether name is a rule file: *.yaml or *.yml, and
// not a fixture (*_test.yaml, *_test.yml).
func IsRuleFile(name string) bool {
	ext := path.Ext(name)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
}

// LoadDir loads every rule file in dir (not its subdirectories, not its
// fixtures). A directory without rule files is an error, as an empty set
// would detect nothing without saying so.
func LoadDir(dir string) (*RuleSet, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, &Error{Code: CodeRead, File: dir, Err: err}
	}
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS loads the rule files at the top of fsys; name labels the set in
// errors.
func LoadFS(fsys fs.FS, name string) (*RuleSet, error) {
	files, err := readRuleFiles(fsys, name)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, &Error{Code: CodeEmpty, File: name, Msg: "no rule files (*.yaml, *.yml)"}
	}
	rs := &RuleSet{files: files}
	for _, f := range files {
		specs, err := decodeRules(f.path, f.data)
		if err != nil {
			return nil, err
		}
		for _, sp := range specs {
			r, err := compileRule(f.path, sp)
			if err != nil {
				return nil, err
			}
			rs.rules = append(rs.rules, r)
		}
	}
	return rs.finish()
}

func readRuleFiles(fsys fs.FS, name string) ([]ruleFile, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, &Error{Code: CodeRead, File: name, Err: err}
	}
	var files []ruleFile
	for _, e := range entries {
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 || !IsRuleFile(e.Name()) {
			continue
		}
		full := path.Join(name, e.Name())
		if info, err := fs.Stat(fsys, e.Name()); err != nil || info.IsDir() {
			continue // a dangling link, or a link to a directory
		} else if info.Size() > MaxFileBytes {
			return nil, &Error{Code: CodeRead, File: full, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, &Error{Code: CodeRead, File: full, Err: err}
		}
		files = append(files, ruleFile{name: e.Name(), path: full, data: data})
	}
	return files, nil
}

// finish sorts, checks ids are distinct and hashes.
func (rs *RuleSet) finish() (*RuleSet, error) {
	slices.SortStableFunc(rs.rules, func(a, b *Rule) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(rs.rules); i++ {
		if a, b := rs.rules[i-1], rs.rules[i]; a.ID == b.ID {
			return nil, &Error{Code: CodeDuplicateRule, File: b.File, Rule: b.ID, Msg: "rule id is not unique (also in " + a.File + ")"}
		}
	}
	slices.SortFunc(rs.files, func(a, b ruleFile) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(string(a.data), string(b.data))
	})
	h := sha256.New()
	var n [8]byte
	for _, f := range rs.files {
		binary.BigEndian.PutUint64(n[:], uint64(len(f.name)))
		h.Write(n[:])
		h.Write([]byte(f.name))
		binary.BigEndian.PutUint64(n[:], uint64(len(f.data)))
		h.Write(n[:])
		h.Write(f.data)
	}
	rs.hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return rs, nil
}

// Merge combines sets, as the shipped pack with a site's own rules; a
// rule id in two sets is an error. The merged hash covers every file.
func Merge(sets ...*RuleSet) (*RuleSet, error) {
	m := &RuleSet{}
	for _, s := range sets {
		if s == nil {
			continue
		}
		m.rules = append(m.rules, s.rules...)
		m.files = append(m.files, s.files...)
	}
	return m.finish()
}

// shippedDir names the embedded pack's files in errors and hashes.
const shippedDir = "rules"

var shipped = sync.OnceValue(func() *RuleSet {
	rs, err := LoadFS(rules.FS, shippedDir)
	if err != nil {
		// The pack is part of the build and its own test loads it; a
		// pack that does not load is a broken build, not bad input.
		panic(fmt.Sprintf("detect: the shipped rule pack does not load: %v", err))
	}
	return rs
})

// Shipped returns the rule pack built into Rampart (correlator/rules).
func Shipped() *RuleSet { return shipped() }
