package toolschema

import (
	"errors"
	"fmt"
	"path/filepath"
)

// What a call to a tool with no schema gets (Config.UnknownTools).
const (
	UnknownAllow = "allow"
	UnknownDeny  = "deny"
)

// What a changed schema in a tools/list answer does (Config.OnChange).
const (
	// ChangeKeep keeps validating against the pinned schema and reports
	// the change.
	ChangeKeep = "keep"
	// ChangeDeny keeps the pinned schema and refuses every call to the
	// tool (SchemaChanged) until the backend lists the pinned schema
	// again. A new schema is accepted by configuration, where it is
	// reviewed: pinned in tools, it takes effect when the enforcer
	// restarts. (Observed pins live in each enforcer's memory: a restart
	// pins again what the backend lists first.)
	ChangeDeny = "deny"
	// ChangeAccept pins the new schema at once and reports the change.
	ChangeAccept = "accept"
)

// Config says which schemas tool arguments are checked against. In the
// enforcer's YAML it is the tool_schemas section:
//
//	tool_schemas:
//	  unknown_tools: allow     # or deny
//	  on_change: keep          # or deny, accept
//	  observe: true            # pin schemas seen in tools/list answers
//	  tools:
//	    send_email: {file: schemas/send_email.json}
//	    search:
//	      schema: {type: object, required: [query], properties: {query: {type: string}}}
type Config struct {
	// Tools pins a schema for a tool's arguments by configuration. A
	// configured pin is never replaced by what the backend lists: a
	// different listed schema is reported as a change and never pinned,
	// whatever OnChange says.
	Tools map[string]Source `yaml:"tools"`
	// UnknownTools is what a call gets when its tool has no schema,
	// neither configured nor observed: "allow" (the default; arguments go
	// unchecked) or "deny" (ToolUnknown).
	UnknownTools string `yaml:"unknown_tools"`
	// OnChange is what a tools/list answer listing another schema than the
	// pinned one does: "keep" (the default), "deny" or "accept"; see
	// ChangeKeep, ChangeDeny, ChangeAccept. The change is reported either
	// way.
	OnChange string `yaml:"on_change"`
	// Observe pins the schema of every tool the backend lists the first
	// time it is seen (trust on first use). Default true; when false only
	// configured schemas are pinned and listings are only compared.
	Observe *bool `yaml:"observe"`
}

// Source is one configured schema: a JSON file, or the schema inline (in
// YAML or JSON syntax). Schemas must be self-contained: a $ref to another
// document is not fetched.
type Source struct {
	// File is a JSON Schema file, relative to the config file once
	// ResolvePaths has run.
	File string `yaml:"file"`
	// Schema is the schema itself.
	Schema any `yaml:"schema"`
}

// SetDefaults fills the unset fields of c.
func (c *Config) SetDefaults() {
	if c.UnknownTools == "" {
		c.UnknownTools = UnknownAllow
	}
	if c.OnChange == "" {
		c.OnChange = ChangeKeep
	}
	if c.Observe == nil {
		t := true
		c.Observe = &t
	}
}

// Validate reports the first configuration error.
func (c *Config) Validate() error {
	switch c.UnknownTools {
	case "", UnknownAllow, UnknownDeny:
	default:
		return fmt.Errorf("toolschema: unknown_tools must be %q or %q, not %q", UnknownAllow, UnknownDeny, c.UnknownTools)
	}
	switch c.OnChange {
	case "", ChangeKeep, ChangeDeny, ChangeAccept:
	default:
		return fmt.Errorf("toolschema: on_change must be %q, %q or %q, not %q", ChangeKeep, ChangeDeny, ChangeAccept, c.OnChange)
	}
	for tool, s := range c.Tools {
		switch {
		case tool == "":
			return errors.New("toolschema: tools: empty tool name")
		case (s.File == "") == (s.Schema == nil):
			return fmt.Errorf("toolschema: tools.%s: exactly one of file and schema is required", tool)
		}
	}
	return nil
}

// ResolvePaths makes relative schema file paths relative to dir, the
// directory of the config file.
func (c *Config) ResolvePaths(dir string) {
	for tool, s := range c.Tools {
		if s.File != "" && !filepath.IsAbs(s.File) {
			s.File = filepath.Join(dir, s.File)
			c.Tools[tool] = s
		}
	}
}
