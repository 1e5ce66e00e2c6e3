// Package toolschema checks a tool call's arguments against a JSON Schema
// pinned for the tool, before policy decides on them. Schemas come from
// configuration, or from the backend's own tools/list answers, pinned by
// the sha256 of their canonical JSON; a backend that later lists another
// schema for a tool is reported as a Change, which the enforcer records as
// an event, and does not silently widen what the tool accepts.
package toolschema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Origin says where a pinned schema came from.
type Origin string

// Origins of a pin.
const (
	OriginConfig   Origin = "config"
	OriginObserved Origin = "observed"
)

// ChangeKind says how a listed schema differs from what was pinned.
type ChangeKind string

// Kinds of Change.
const (
	// Added: a tool listed for the first time, or listed again after it
	// was reported removed.
	Added ChangeKind = "added"
	// Changed: a tool listed with another schema than before.
	Changed ChangeKind = "changed"
	// Removed: a pinned tool missing from a complete listing. Its pin is
	// kept, so that a tool that comes back with another schema is seen.
	Removed ChangeKind = "removed"
)

// Change is one difference between a tools/list answer and the pins.
type Change struct {
	Tool string
	Kind ChangeKind
	// OldHash is the schema hash before the change ("" for a new tool);
	// NewHash the listed one ("" for a removal). Hashes are
	// "sha256:<hex>" of the schema's canonical JSON.
	OldHash, NewHash string
	// Pinned is the hash calls are checked against after the change; it
	// differs from NewHash when the listed schema was not pinned (on_change
	// keep or deny, or a configured pin).
	Pinned string
	// Origin is where the pin in force came from.
	Origin Origin
	// Invalid says why the listed schema cannot be compiled; "" when it
	// can. Calls to a tool whose pinned schema is invalid are refused.
	Invalid string
}

// Registry holds the pinned schema of each tool. It is safe for concurrent
// use.
type Registry struct {
	unknownDeny bool
	onChange    string
	observe     bool

	mu    sync.RWMutex
	tools map[string]*entry
	// unpinned is the listed hash of each tool seen while observe is off,
	// so that each is reported once per schema, not once per listing.
	unpinned map[string]string
}

// entry is one tool's pin.
type entry struct {
	origin  Origin
	schema  compiled
	pending *compiled // a listed schema that differs from the pin, reported once
	listed  bool      // in the last listing seen
	seen    bool      // in any listing seen
}

// compiled is a schema and its hash; sch is nil when it did not compile
// (invalid says why) or has not been compiled yet (done is false).
type compiled struct {
	hash    string
	canon   []byte
	sch     *jsonschema.Schema
	invalid string
	done    bool
}

// New compiles the configured schemas. A configured schema that does not
// compile is a configuration error.
func New(cfg Config) (*Registry, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Registry{
		unknownDeny: cfg.UnknownTools == UnknownDeny,
		onChange:    cfg.OnChange,
		observe:     *cfg.Observe,
		tools:       make(map[string]*entry, len(cfg.Tools)),
		unpinned:    map[string]string{},
	}
	for tool, src := range cfg.Tools {
		raw, err := src.json()
		if err != nil {
			return nil, fmt.Errorf("toolschema: tools.%s: %w", tool, err)
		}
		c := compile(raw)
		if c.invalid != "" {
			return nil, fmt.Errorf("toolschema: tools.%s: %s", tool, c.invalid)
		}
		r.tools[tool] = &entry{origin: OriginConfig, schema: c}
	}
	return r, nil
}

// json returns the schema of s as JSON.
func (s Source) json() ([]byte, error) {
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := json.Marshal(s.Schema)
	if err != nil {
		return nil, fmt.Errorf("inline schema: %w", err)
	}
	return b, nil
}

// Validate checks args, the raw arguments of a tools/call (mcp.Call.Args),
// against tool's pinned schema. Absent or null arguments are checked as
// the empty object. It returns nil, or an *Error whose Code is
// ArgsInvalid, ToolUnknown, SchemaChanged or SchemaInvalid.
func (r *Registry) Validate(tool string, args json.RawMessage) error {
	sch, err := r.lookup(tool)
	if err != nil || sch == nil {
		return err
	}
	var v any = map[string]any{}
	if len(args) > 0 && !bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(args)); err != nil {
			return &Error{Code: ArgsInvalid, Tool: tool, Detail: err.Error()}
		}
	}
	return validate(tool, sch, v)
}

// ValidateDecoded is Validate for arguments already decoded with numbers
// as json.Number (mcp.Call.JSONArguments), so they are decoded once.
func (r *Registry) ValidateDecoded(tool string, args map[string]any) error {
	sch, err := r.lookup(tool)
	if err != nil || sch == nil {
		return err
	}
	return validate(tool, sch, args)
}

func validate(tool string, sch *jsonschema.Schema, v any) error {
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	out := &Error{Code: ArgsInvalid, Tool: tool, Detail: err.Error()}
	if ve, ok := errors.AsType[*jsonschema.ValidationError](err); ok {
		leaf := firstLeaf(ve)
		out.Pointer = pointer(leaf.InstanceLocation)
		if kp := leaf.ErrorKind.KeywordPath(); len(kp) > 0 {
			out.Keyword = kp[len(kp)-1]
		}
		out.Detail = leaf.ErrorKind.LocalizedString(printer)
	}
	return out
}

// lookup returns tool's compiled schema: nil with a nil error when the
// tool has none and unknown tools are allowed.
func (r *Registry) lookup(tool string) (*jsonschema.Schema, error) {
	r.mu.RLock()
	e := r.tools[tool]
	var sch compiled
	pending := false
	if e != nil {
		sch, pending = e.schema, e.pending != nil
	}
	r.mu.RUnlock()
	switch {
	case e == nil && r.unknownDeny:
		return nil, &Error{Code: ToolUnknown, Tool: tool}
	case e == nil:
		return nil, nil
	case pending && r.onChange == ChangeDeny:
		return nil, &Error{Code: SchemaChanged, Tool: tool}
	case sch.sch == nil:
		return nil, &Error{Code: SchemaInvalid, Tool: tool, Detail: sch.invalid}
	}
	return sch.sch, nil
}

var printer = message.NewPrinter(language.English)

// firstLeaf is the first violation at the bottom of ve's cause tree: the
// most specific account of what is wrong.
func firstLeaf(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return ve
}

// pointer joins instance location tokens into an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	esc := strings.NewReplacer("~", "~0", "/", "~1")
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(esc.Replace(t))
	}
	return b.String()
}

// listing is the part of a tools/list answer that Observe reads.
type listing struct {
	Result *struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
		NextCursor string `json:"nextCursor"`
	} `json:"result"`
}

// Observe compares the tools in a tools/list answer (one JSON-RPC
// response, or a batch of them) with the pins, pins what is new, and
// returns every difference. The answer is taken as the complete listing
// when it has no nextCursor; answers to requests that carried a cursor go
// to ObservePage instead, so that a later page does not report the
// earlier pages' tools as removed. Responses without a result (errors)
// are ignored.
func (r *Registry) Observe(toolsListResponse []byte) ([]Change, error) {
	return r.ObservePage(toolsListResponse, "")
}

// ObservePage is Observe for one page of a listing; cursor is the
// params.cursor of the tools/list request (mcp.Call.Cursor). Removals are
// reported only for a complete listing: no cursor asked, no nextCursor
// answered.
func (r *Registry) ObservePage(toolsListResponse []byte, cursor string) ([]Change, error) {
	var answers []listing
	trimmed := bytes.TrimSpace(toolsListResponse)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &answers); err != nil {
			return nil, fmt.Errorf("toolschema: tools/list answer: %w", err)
		}
	} else {
		var one listing
		if err := json.Unmarshal(trimmed, &one); err != nil {
			return nil, fmt.Errorf("toolschema: tools/list answer: %w", err)
		}
		answers = []listing{one}
	}
	var changes []Change
	for _, a := range answers {
		if a.Result == nil {
			continue
		}
		listed := make(map[string]*compiled, len(a.Result.Tools))
		for _, t := range a.Result.Tools {
			if t.Name == "" {
				return nil, errors.New("toolschema: tools/list answer: a tool without a name")
			}
			if _, dup := listed[t.Name]; dup {
				return nil, fmt.Errorf("toolschema: tools/list answer: tool %q listed twice", t.Name)
			}
			listed[t.Name] = hashed(t.InputSchema)
		}
		// Compile outside the lock, and only schemas not already pinned
		// or waiting: compiling is the slow part of a listing, and
		// Validate must not wait behind it.
		r.mu.RLock()
		for tool, c := range listed {
			if e := r.tools[tool]; e == nil || (c.hash != e.schema.hash && (e.pending == nil || c.hash != e.pending.hash)) {
				c.compile()
			}
		}
		r.mu.RUnlock()
		complete := cursor == "" && a.Result.NextCursor == ""
		changes = append(changes, r.apply(listed, complete)...)
	}
	return changes, nil
}

// apply updates the pins with one listing.
func (r *Registry) apply(listed map[string]*compiled, complete bool) []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changes []Change
	for _, tool := range sortedKeys(listed) {
		// Pins may have moved since the schemas were compiled; a schema
		// that is to be pinned now and was not compiled is compiled here.
		c := listed[tool]
		e := r.tools[tool]
		if e == nil || (c.hash != e.schema.hash && (e.pending == nil || c.hash != e.pending.hash)) {
			c.compile()
		}
		switch {
		case e == nil && !r.observe:
			if old, ok := r.unpinned[tool]; !ok || old != c.hash {
				kind := Added
				if ok {
					kind = Changed
				}
				r.unpinned[tool] = c.hash
				changes = append(changes, Change{Tool: tool, Kind: kind, OldHash: old, NewHash: c.hash, Invalid: c.invalid})
			}
		case e == nil:
			r.tools[tool] = &entry{origin: OriginObserved, schema: *c}
			changes = append(changes, Change{Tool: tool, Kind: Added, NewHash: c.hash, Pinned: c.hash, Origin: OriginObserved, Invalid: c.invalid})
		case c.hash == e.schema.hash:
			if e.pending != nil { // the backend went back to the pinned schema
				changes = append(changes, e.change(tool, Changed, e.pending.hash, c))
				e.pending = nil
			} else if e.seen && !e.listed {
				changes = append(changes, e.change(tool, Added, e.schema.hash, c))
			}
		case e.pending != nil && c.hash == e.pending.hash:
			// Reported when first listed; the pin stays.
		default:
			old := e.schema.hash
			if e.pending != nil {
				old = e.pending.hash
			}
			if r.onChange == ChangeAccept && e.origin == OriginObserved {
				e.schema, e.pending = *c, nil
			} else {
				e.pending = c
			}
			changes = append(changes, e.change(tool, Changed, old, c))
		}
		if e := r.tools[tool]; e != nil {
			e.listed, e.seen = true, true
		}
	}
	if complete {
		for _, tool := range sortedKeys(r.tools) {
			e := r.tools[tool]
			if _, ok := listed[tool]; !ok && e.listed {
				e.listed = false
				changes = append(changes, Change{Tool: tool, Kind: Removed, OldHash: e.schema.hash, Pinned: e.schema.hash, Origin: e.origin})
			}
		}
	}
	return changes
}

// change describes a change to e to listed schema c.
func (e *entry) change(tool string, kind ChangeKind, old string, c *compiled) Change {
	return Change{Tool: tool, Kind: kind, OldHash: old, NewHash: c.hash, Pinned: e.schema.hash, Origin: e.origin, Invalid: c.invalid}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// compile hashes and compiles one schema. A schema that cannot be compiled
// still gets a hash, so that its arrival and departure are reported.
func compile(raw []byte) compiled {
	c := hashed(raw)
	c.compile()
	return *c
}

// hashed returns raw's hash and canonical form, not yet compiled.
func hashed(raw []byte) *compiled {
	canon, err := Canonical(raw)
	if err != nil {
		return &compiled{hash: Hash(raw), invalid: "not JSON: " + err.Error(), done: true}
	}
	return &compiled{hash: Hash(canon), canon: canon}
}

// compile compiles c's canonical schema once.
func (c *compiled) compile() {
	if c.done {
		return
	}
	c.done = true
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.canon))
	if err != nil {
		c.invalid = err.Error()
		return
	}
	if _, ok := doc.(map[string]any); !ok {
		// MCP requires an object schema; true/false schemas are no pin.
		c.invalid = "inputSchema is not a JSON object"
		return
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	// A schema listed by the backend must not make the enforcer read
	// files or fetch URLs: only the embedded meta-schemas resolve.
	comp.UseLoader(noLoader{})
	const loc = "urn:rampart:toolschema"
	if err := comp.AddResource(loc, doc); err != nil {
		c.invalid = err.Error()
		return
	}
	if c.sch, err = comp.Compile(loc); err != nil {
		c.invalid = err.Error()
	}
}

// noLoader refuses every external document.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema %s is not loaded: schemas must be self-contained", url)
}

// Canonical returns the canonical JSON of a schema: object keys sorted, no
// insignificant white space, no HTML escaping, numbers as written. Two
// spellings of one schema hash alike, so reformatting by the backend is
// not reported as a change. (Numbers are not normalised as RFC 8785 would,
// so 1.0 and 1 differ: a false change, never a missed one.)
func Canonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the schema")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Hash returns "sha256:<hex>" of b.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
