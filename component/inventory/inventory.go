// Package inventory answers what the agent inventory says of an event's
// agent: owner, team, purpose, risk tier, environment, and whether it is
// registered at all. The collector stores the answer beside each event
// (the agent_* columns), and the correlator's detection rules read it
// live, from the same file by the same matching, so a rule and a replay
// of stored history agree. The inventory is a YAML file, reloaded when it
// changes; a bad reload keeps the last good inventory.
package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Config locates the inventory.
type Config struct {
	// File is the inventory YAML (see testdata/inventory.good.yml). Empty:
	// no inventory, and no agent is said to be registered or not
	// (agent_inventory empty, inventory_loaded false), so "not
	// registered" is never claimed without one.
	File string `yaml:"file"`
	// Reload is how often the file is checked for a change. Default 10s.
	Reload time.Duration `yaml:"reload"`
}

// Defaults returns a configuration without an inventory.
func Defaults() Config { return Config{Reload: 10 * time.Second} }

// Validate checks c.
func (c Config) Validate() error {
	if c.File != "" && c.Reload <= 0 {
		return fmt.Errorf("inventory: reload must be positive, got %s", c.Reload)
	}
	return nil
}

// File is the inventory file's form.
type File struct {
	Agents []Entry `yaml:"agents"`
}

// Entry is one agent, or one family of agents, of the inventory. It names
// them by exactly one of SPIFFEID and Subject: an exact identity, or a
// prefix ending in "*" right after a separator (for SPIFFE IDs, "/": a
// whole path segment and below; for subjects one of ":/.-_@"), so a
// pattern can never reach into the middle of another name.
//
// Tenant, when set, registers the agent in that tenant only: its events
// in any other tenant match nothing of the entry, since a subject is a
// name the tenant's own issuer chose, and another tenant's issuer can
// choose the same one. An entry without a tenant is a platform agent,
// registered in every tenant. Within one tenant's events, entries of
// that tenant are tried before platform ones.
type Entry struct {
	Tenant      string `yaml:"tenant"`
	SPIFFEID    string `yaml:"spiffe_id"`
	Subject     string `yaml:"subject"`
	Owner       string `yaml:"owner"`
	Team        string `yaml:"team"`
	Purpose     string `yaml:"purpose"`
	RiskTier    string `yaml:"risk_tier"`
	Environment string `yaml:"environment"`
}

// Errors of an inventory that does not load, by stable code.
var (
	ErrPattern   = errors.New("inventory_bad_pattern")
	ErrDuplicate = errors.New("inventory_duplicate")
	ErrEntry     = errors.New("inventory_bad_entry")
)

const subjectSeparators = ":/.-_@"

// Index answers lookups for one version of the inventory; safe for
// concurrent use, since it never changes once parsed.
type Index struct {
	version string // sha256 of the file, short: what enriched a row
	entries int
	// scopes holds the entries by tenant; "" is the platform's, for
	// every tenant.
	scopes map[string]*[2]table
}

// Kinds of names, in the order lookups try them: an event's SPIFFE ID is
// a workload identity the enforcer verified, so its entry wins over one
// for the acting subject's name.
const (
	bySPIFFE = iota
	bySubject
)

// table holds one kind's entries: exact names, and prefixes by length,
// longest first, so the most specific entry is found first.
type table struct {
	exact    map[string]*Entry
	prefixes map[string]*Entry
	lengths  []int
}

// Parse builds an index from an inventory file's bytes, refusing a file
// that names an agent ambiguously with ErrEntry, ErrPattern or
// ErrDuplicate.
func Parse(data []byte) (*Index, error) {
	var f File
	if err := configfile.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEntry, err)
	}
	ix := &Index{version: version(data), entries: len(f.Agents), scopes: map[string]*[2]table{}}
	for i := range f.Agents {
		e := &f.Agents[i]
		kind, name := bySPIFFE, e.SPIFFEID
		if (e.SPIFFEID == "") == (e.Subject == "") {
			return nil, fmt.Errorf("%w: agents[%d]: exactly one of spiffe_id and subject", ErrEntry, i)
		}
		if e.Subject != "" {
			kind, name = bySubject, e.Subject
		}
		scope := ix.scopes[e.Tenant]
		if scope == nil {
			scope = &[2]table{}
			for k := range scope {
				scope[k] = table{exact: map[string]*Entry{}, prefixes: map[string]*Entry{}}
			}
			ix.scopes[e.Tenant] = scope
		}
		t := &scope[kind]
		prefix, isPrefix := strings.CutSuffix(name, "*")
		switch {
		case strings.ContainsAny(prefix, "*?[]{}\\"):
			return nil, fmt.Errorf("%w: agents[%d]: %q: only one trailing * is a pattern", ErrPattern, i, name)
		case kind == bySPIFFE && !strings.HasPrefix(name, "spiffe://"):
			return nil, fmt.Errorf("%w: agents[%d]: %q is not a SPIFFE ID", ErrPattern, i, name)
		case kind == bySPIFFE && !canonicalSPIFFE(strings.TrimSuffix(prefix, "/")+"/x"):
			return nil, fmt.Errorf("%w: agents[%d]: %q is not a canonical SPIFFE ID", ErrPattern, i, name)
		case isPrefix && kind == bySPIFFE && !strings.HasSuffix(prefix, "/"):
			return nil, fmt.Errorf("%w: agents[%d]: %q: a SPIFFE pattern ends in /*", ErrPattern, i, name)
		case isPrefix && kind == bySubject && (prefix == "" || !strings.ContainsRune(subjectSeparators, rune(prefix[len(prefix)-1]))):
			return nil, fmt.Errorf("%w: agents[%d]: %q: * must follow one of %q", ErrPattern, i, name, subjectSeparators)
		}
		m := t.exact
		if isPrefix {
			m, name = t.prefixes, prefix
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%w: agents[%d]: %q is listed twice%s", ErrDuplicate, i, e.SPIFFEID+e.Subject, inTenant(e.Tenant))
		}
		m[name] = e
		if isPrefix && !slices.Contains(t.lengths, len(name)) {
			t.lengths = append(t.lengths, len(name))
		}
	}
	for _, scope := range ix.scopes {
		for k := range scope {
			slices.SortFunc(scope[k].lengths, func(a, b int) int { return b - a })
		}
	}
	return ix, nil
}

func inTenant(tenant string) string {
	if tenant == "" {
		return ""
	}
	return " in tenant " + strconv.Quote(tenant)
}

// canonicalSPIFFE reports whether id is a SPIFFE ID in the one form a
// pattern can be compared with byte by byte: lower-case trust domain, no
// empty, "." or ".." segments, no percent-encoding. Any other spelling of
// an ID could name what a pattern's owner did not mean, so it matches
// nothing.
func canonicalSPIFFE(id string) bool {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok || strings.ContainsAny(rest, "%?#") {
		return false
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || td != strings.ToLower(td) {
		return false
	}
	if path == "" {
		return true
	}
	for {
		seg, rest, more := strings.Cut(path, "/")
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		if !more {
			return true
		}
		path = rest
	}
}

func (t *table) lookup(name string) *Entry {
	if t == nil {
		return nil
	}
	if e, ok := t.exact[name]; ok {
		return e
	}
	for _, n := range t.lengths {
		if n <= len(name) {
			if e, ok := t.prefixes[name[:n]]; ok {
				return e
			}
		}
	}
	return nil
}

// Agent is what ix says of e's agent.
func (ix *Index) Agent(e *event.Event) ddl.Agent {
	a := ddl.Agent{Inventory: ix.version}
	if e.Identity == nil {
		return a
	}
	// The tenant's own entries first, then the platform's; an event
	// without a tenant sees only the platform's.
	scopes := [2]*[2]table{ix.scopes[""]}
	if e.Tenant != "" {
		scopes[0], scopes[1] = ix.scopes[e.Tenant], ix.scopes[""]
	}
	var found *Entry
	if id := e.Identity.SPIFFEID; id != "" && canonicalSPIFFE(id) {
		found = lookupIn(scopes, bySPIFFE, id)
	}
	if found == nil {
		if sub := e.Identity.CurrentActor(); sub != "" {
			found = lookupIn(scopes, bySubject, sub)
		}
	}
	if found != nil {
		a.Registered, a.Owner, a.Team, a.Purpose, a.RiskTier, a.Environment = true, found.Owner, found.Team, found.Purpose, found.RiskTier, found.Environment
	}
	return a
}

func lookupIn(scopes [2]*[2]table, kind int, name string) *Entry {
	for _, s := range scopes {
		if s == nil {
			continue
		}
		if e := s[kind].lookup(name); e != nil {
			return e
		}
	}
	return nil
}

// Inventory answers what the current inventory says of an event's agent,
// safe for concurrent use; Run keeps it current.
type Inventory struct {
	cfg     Config
	log     *slog.Logger
	current atomic.Pointer[Index]
	refused string // the version of the last file refused, reported once
	reloads metric.Int64Counter
}

// New loads the inventory cfg names for the component named (its reload
// counter is rampart.<component>.inventory.reloads); an inventory that
// does not load is an error here (there is no last good one yet). With no
// file, every event's agent is unknown.
func New(cfg Config, component string, log *slog.Logger) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	inv := &Inventory{cfg: cfg, log: log.With("component", "inventory")}
	var err error
	if inv.reloads, err = otel.Meter("github.com/rampart-io/rampart/component/inventory").Int64Counter("rampart."+component+".inventory.reloads",
		metric.WithUnit("{reload}"), metric.WithDescription("Inventory reloads, by outcome (loaded, failed: the last good one kept)")); err != nil {
		return nil, err
	}
	if cfg.File == "" {
		return inv, nil
	}
	if _, err := inv.load(); err != nil {
		return nil, err
	}
	return inv, nil
}

// Agent is what the inventory says of e's agent: the zero Agent when
// there is no inventory.
func (inv *Inventory) Agent(e *event.Event) ddl.Agent {
	if inv == nil {
		return ddl.Agent{}
	}
	ix := inv.current.Load()
	if ix == nil {
		return ddl.Agent{}
	}
	return ix.Agent(e)
}

// Version is the current inventory's version ("" without one).
func (inv *Inventory) Version() string {
	if ix := inv.current.Load(); ix != nil {
		return ix.version
	}
	return ""
}

// load reads the file and installs it if its content changed; changed is
// false when it is the current inventory, or the bad one last refused.
func (inv *Inventory) load() (changed bool, err error) {
	data, err := os.ReadFile(inv.cfg.File)
	if err != nil {
		return false, fmt.Errorf("inventory: %w", err)
	}
	v := version(data)
	if cur := inv.current.Load(); cur != nil && cur.version == v || v == inv.refused {
		return false, nil
	}
	ix, err := Parse(data)
	if err != nil {
		inv.refused = v
		return false, fmt.Errorf("inventory: %s: %w", inv.cfg.File, err)
	}
	inv.current.Store(ix)
	inv.log.Info("inventory loaded", "file", inv.cfg.File, "version", ix.version, "agents", ix.entries)
	return true, nil
}

// version names an inventory by its content.
func version(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// Run reloads the inventory when its file changes, until ctx ends. A
// reload that fails (a bad file, a file gone) keeps the last good
// inventory, and is logged and counted.
func (inv *Inventory) Run(ctx context.Context) error {
	if inv.cfg.File == "" {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(inv.cfg.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		inv.Reload(ctx)
	}
}

// Reload checks the file once, as Run does on each tick.
func (inv *Inventory) Reload(ctx context.Context) {
	changed, err := inv.load()
	switch {
	case err != nil:
		inv.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "failed")))
		inv.log.Error("inventory reload failed; the last good inventory stays", "version", inv.Version(), "err", err)
	case changed:
		inv.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "loaded")))
	}
}
