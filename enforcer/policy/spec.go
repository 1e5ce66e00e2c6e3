package policy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// The YAML form of a policy file. It is decoded by walking yaml.v3 nodes
// rather than by struct tags, because every error must carry the line of
// the offending key or rule and unknown keys must be refused; yaml.v3's
// Node.Decode offers neither.

// AnyTenant is the tenant of a default policy: it decides for every tenant
// that has no policy of its own.
const AnyTenant = "*"

// fileSpec is one policy file.
type fileSpec struct {
	ID     string
	Tenant string
	Rules  []ruleSpec
}

// ruleSpec is one rule with the positions of its expressions.
type ruleSpec struct {
	ID             string
	Line           int
	Match          string
	MatchLine      int
	Condition      string
	CondLine       int
	Effect         string
	EffectLine     int
	Reason         string
	Redact         []string
	RecordArgs     bool
	AuditMode      string
	Budget         *Budget
	BudgetLine     int
	Credential     *credential.Spec
	CredentialLine int
	obligations    bool
}

// decodeFile parses one policy document.
func decodeFile(name string, data []byte) (*fileSpec, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Code: CodeMissing, File: name, Msg: "empty file"}
		}
		return nil, &Error{Code: CodeSyntax, File: name, Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, &Error{Code: CodeSyntax, File: name, Err: err}
		}
		return nil, &Error{Code: CodeSyntax, File: name, Line: line, Msg: "one policy per file: a second YAML document follows"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &Error{Code: CodeMissing, File: name, Msg: "empty file"}
		}
		root = root.Content[0]
	}
	d := decoder{file: name}
	f := &fileSpec{Tenant: AnyTenant}
	var idLine int
	err := d.mapping(root, "policy", func(key string, k, v *yaml.Node) error {
		switch key {
		case "id":
			idLine = k.Line
			return d.str(v, "id", &f.ID)
		case "tenant":
			return d.str(v, "tenant", &f.Tenant)
		case "rules":
			return d.rules(v, f)
		}
		return d.unknown(k, "policy", "id, tenant, rules")
	})
	if err != nil {
		return nil, err
	}
	if f.ID == "" {
		return nil, &Error{Code: CodeMissing, File: name, Line: max(idLine, root.Line), Msg: "id is required"}
	}
	if f.Tenant == "" {
		return nil, &Error{Code: CodeMissing, File: name, Msg: `tenant must not be empty (use "*" for the default policy)`}
	}
	return f, nil
}

type decoder struct{ file string }

func (d decoder) errAt(code ErrorCode, n *yaml.Node, rule, format string, args ...any) error {
	return &Error{Code: code, File: d.file, Line: n.Line, Column: n.Column, Rule: rule, Msg: fmt.Sprintf(format, args...)}
}

// mapping calls fn for each key of a mapping node, refusing aliases,
// merge keys and duplicate keys: a policy must read the same to a human
// as to the loader.
func (d decoder) mapping(n *yaml.Node, what string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return d.errAt(CodeSyntax, n, "", "YAML aliases are not allowed")
	}
	if n.Kind != yaml.MappingNode {
		return d.errAt(CodeSyntax, n, "", "%s must be a mapping", what)
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return d.errAt(CodeSyntax, k, "", "%s keys must be plain strings", what)
		}
		if seen[k.Value] {
			return d.errAt(CodeSyntax, k, "", "%s key %q appears twice", what, k.Value)
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return d.errAt(CodeSyntax, v, "", "YAML aliases are not allowed")
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (d decoder) unknown(k *yaml.Node, what, known string) error {
	return d.errAt(CodeUnknownKey, k, "", "unknown %s key %q (known: %s)", what, k.Value, known)
}

func (d decoder) str(v *yaml.Node, what string, dst *string) error {
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!int" && v.Tag != "!!float" && v.Tag != "!!bool") {
		return d.errAt(CodeSyntax, v, "", "%s must be a string", what)
	}
	*dst = v.Value
	return nil
}

func (d decoder) rules(n *yaml.Node, f *fileSpec) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return d.errAt(CodeSyntax, n, "", "rules must be a list")
	}
	for i, rn := range n.Content {
		r := ruleSpec{Line: rn.Line}
		// Read the id first so an error in any other key can name its rule.
		if rn.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(rn.Content); j += 2 {
				if k, v := rn.Content[j], rn.Content[j+1]; k.Value == "id" && v.Kind == yaml.ScalarNode {
					r.ID = v.Value
				}
			}
		}
		err := d.mapping(rn, "rule", func(key string, k, v *yaml.Node) error {
			switch key {
			case "id":
				return d.str(v, "rule id", &r.ID)
			case "match":
				r.MatchLine = exprLine(v)
				return d.str(v, "match", &r.Match)
			case "condition":
				r.CondLine = exprLine(v)
				return d.str(v, "condition", &r.Condition)
			case "effect":
				r.EffectLine = v.Line
				return d.str(v, "effect", &r.Effect)
			case "reason":
				return d.str(v, "reason", &r.Reason)
			case "obligations":
				r.obligations = true
				return d.obligations(v, &r)
			}
			return d.unknown(k, "rule", "id, match, condition, effect, reason, obligations")
		})
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) && pe.Rule == "" {
				pe.Rule = r.ID
			}
			return err
		}
		if r.ID == "" {
			return d.errAt(CodeMissing, rn, "", "rule %d: id is required", i+1)
		}
		f.Rules = append(f.Rules, r)
	}
	return nil
}

func (d decoder) obligations(n *yaml.Node, r *ruleSpec) error {
	return d.mapping(n, "obligations", func(key string, k, v *yaml.Node) error {
		switch key {
		case "redact":
			if v.Kind != yaml.SequenceNode {
				return d.errAt(CodeSyntax, v, "", "redact must be a list of argument paths")
			}
			for _, p := range v.Content {
				var s string
				if err := d.str(p, "redact path", &s); err != nil {
					return err
				}
				if err := validRedactPath(s); err != nil {
					return d.errAt(CodeInvalidValue, p, "", "redact path %q: %v", s, err)
				}
				r.Redact = append(r.Redact, s)
			}
			return nil
		case "record_args":
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				return d.errAt(CodeInvalidValue, v, "", "record_args must be true or false")
			}
			r.RecordArgs = v.Value == "true"
			return nil
		case "on_audit_unavailable":
			if v.Kind != yaml.ScalarNode || (v.Value != "spool" && v.Value != "refuse") {
				return d.errAt(CodeInvalidValue, v, "", "on_audit_unavailable must be spool or refuse")
			}
			r.AuditMode = v.Value
			return nil
		case "budget":
			r.BudgetLine = k.Line
			b, err := d.budget(v)
			r.Budget = b
			return err
		case "credential":
			r.CredentialLine = k.Line
			c, err := d.credential(v)
			r.Credential = c
			return err
		}
		return d.unknown(k, "obligations", "redact, record_args, on_audit_unavailable, budget, credential")
	})
}

func (d decoder) budget(n *yaml.Node) (*Budget, error) {
	b := &Budget{}
	var have struct{ per, calls, window bool }
	err := d.mapping(n, "budget", func(key string, k, v *yaml.Node) error {
		var s string
		switch key {
		case "per":
			have.per = true
			if err := d.str(v, "budget per", &s); err != nil {
				return err
			}
			switch BudgetScope(s) {
			case PerSession, PerTask:
				b.Per = BudgetScope(s)
				return nil
			}
			return d.errAt(CodeInvalidValue, v, "", "budget per must be session or task, not %q", s)
		case "calls":
			have.calls = true
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
				return d.errAt(CodeInvalidValue, v, "", "budget calls must be a positive integer")
			}
			var c int64
			if err := v.Decode(&c); err != nil || c <= 0 || c > 1<<31 {
				return d.errAt(CodeInvalidValue, v, "", "budget calls must be a positive integer up to 2^31, not %s", v.Value)
			}
			b.Calls = c
			return nil
		case "window":
			have.window = true
			if err := d.str(v, "budget window", &s); err != nil {
				return err
			}
			w, err := time.ParseDuration(s)
			if err != nil || w <= 0 {
				return d.errAt(CodeInvalidValue, v, "", "budget window must be a positive duration such as 1h, not %q", s)
			}
			b.Window = w
			return nil
		}
		return d.unknown(k, "budget", "per, calls, window")
	})
	if err != nil {
		return nil, err
	}
	if !have.per || !have.calls || !have.window {
		return nil, d.errAt(CodeMissing, n, "", "budget needs per, calls and window")
	}
	return b, nil
}

// credential reads a credential obligation: {audience, scope, ttl}, as a
// destination's credential is written.
func (d decoder) credential(n *yaml.Node) (*credential.Spec, error) {
	c := &credential.Spec{}
	err := d.mapping(n, "credential", func(key string, k, v *yaml.Node) error {
		switch key {
		case "audience":
			return d.str(v, "credential audience", &c.Audience)
		case "scope":
			if v.Kind != yaml.SequenceNode {
				return d.errAt(CodeSyntax, v, "", "credential scope must be a list of scopes")
			}
			for _, p := range v.Content {
				var s string
				if err := d.str(p, "credential scope", &s); err != nil {
					return err
				}
				c.Scope = append(c.Scope, s)
			}
			return nil
		case "ttl":
			var s string
			if err := d.str(v, "credential ttl", &s); err != nil {
				return err
			}
			ttl, err := time.ParseDuration(s)
			if err != nil {
				return d.errAt(CodeInvalidValue, v, "", "credential ttl must be a duration such as 5m, not %q", s)
			}
			c.TTL = ttl
			return nil
		}
		return d.unknown(k, "credential", "audience, scope, ttl")
	})
	if err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, d.errAt(CodeInvalidValue, n, "", "%v", err)
	}
	return c, nil
}

// exprLine is the file line of a scalar's first character of content: a
// block scalar (| or >) starts on the line after its indicator.
func exprLine(v *yaml.Node) int {
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return v.Line + 1
	}
	return v.Line
}
