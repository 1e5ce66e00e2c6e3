// Package policy decides whether a request may reach the backend. A policy
// is a YAML list of rules whose match conditions are CEL expressions over
// the caller's identity and the tool call; it is parsed and type-checked
// once at load (prepare), then evaluated per request (Decide). The first
// matching rule decides, and anything unmatched or failing is denied.
package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/rampart-io/rampart/schema/event"
	"gopkg.in/yaml.v3"
)

// DefaultDenyRule is the rule id of a decision no rule matched.
const DefaultDenyRule = "default-deny"

// CostLimit bounds the CEL cost of evaluating one rule, so a rule over
// large arguments cannot stall the request path.
const CostLimit = 100_000

// file is the YAML form of a policy.
type file struct {
	// ID names the policy in decisions.
	ID    string     `yaml:"id"`
	Rules []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	ID     string `yaml:"id"`
	Match  string `yaml:"match"`  // CEL, must be bool
	Effect string `yaml:"effect"` // allow | deny
	Reason string `yaml:"reason"`
}

type rule struct {
	id     string
	effect event.Effect
	reason string
	prg    cel.Program
}

// Policy is a compiled policy, safe for concurrent use.
type Policy struct {
	id    string
	hash  string
	rules []rule
}

// Decision is the outcome of a policy for one request.
type Decision struct {
	Effect     event.Effect
	PolicyID   string
	RuleID     string
	PolicyHash string
	Reason     string
	Eval       time.Duration
}

// Event returns d as the decision of an audit event.
func (d Decision) Event() *event.Decision {
	return &event.Decision{
		Effect:     d.Effect,
		PolicyID:   d.PolicyID,
		RuleID:     d.RuleID,
		PolicyHash: d.PolicyHash,
		Reason:     d.Reason,
		EvalNanos:  d.Eval.Nanoseconds(),
	}
}

// Load reads and compiles the policy file at path.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, b)
}

// Parse compiles a policy; name (usually the file path) prefixes errors.
func Parse(name string, data []byte) (*Policy, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("policy %s: empty file", name)
		}
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	if f.ID == "" {
		return nil, fmt.Errorf("policy %s: id is required", name)
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	p := &Policy{id: f.ID, hash: "sha256:" + hex.EncodeToString(sum[:])}
	seen := map[string]bool{DefaultDenyRule: true}
	for i, rs := range f.Rules {
		if rs.ID == "" {
			return nil, fmt.Errorf("policy %s: rule %d: id is required", name, i+1)
		}
		if seen[rs.ID] {
			return nil, fmt.Errorf("policy %s: rule %q: id is not unique", name, rs.ID)
		}
		seen[rs.ID] = true
		r, err := compile(env, rs)
		if err != nil {
			return nil, fmt.Errorf("policy %s: rule %q: %w", name, rs.ID, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// ID returns the policy's id.
func (p *Policy) ID() string { return p.id }

// Hash returns "sha256:<hex>" of the policy file's bytes.
func (p *Policy) Hash() string { return p.hash }

// newEnv declares the variables rules may use; see Input.
func newEnv() (*cel.Env, error) {
	str := func(name string) cel.EnvOption { return cel.Variable(name, cel.StringType) }
	return cel.NewEnv(
		str("tenant"), str("subject"), str("actor"), str("spiffe_id"),
		str("session"), str("task"),
		str("method"), str("host"), str("path"), str("rpc_method"), str("tool"),
		cel.Variable("chain", cel.ListType(cel.StringType)),
		cel.Variable("chain_depth", cel.IntType),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		// JSON arguments mix ints and doubles; let args.limit > 10 work on both.
		cel.CrossTypeNumericComparisons(true),
	)
}

func compile(env *cel.Env, rs ruleSpec) (rule, error) {
	r := rule{id: rs.ID, reason: rs.Reason}
	switch rs.Effect {
	case "allow":
		r.effect = event.EffectAllow
	case "deny":
		r.effect = event.EffectDeny
	default:
		return rule{}, fmt.Errorf("effect must be allow or deny, not %q", rs.Effect)
	}
	if rs.Match == "" {
		return rule{}, errors.New("match is required")
	}
	ast, iss := env.Compile(rs.Match)
	if iss.Err() != nil {
		return rule{}, fmt.Errorf("match: %w", iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return rule{}, fmt.Errorf("match must be a bool expression, is %s", ast.OutputType())
	}
	prg, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(100),
	)
	if err != nil {
		return rule{}, fmt.Errorf("match: %w", err)
	}
	r.prg = prg
	return r, nil
}

// Decide evaluates the rules in order against in. The first rule that
// matches decides; none matching is a deny by DefaultDenyRule. A rule that
// fails to evaluate denies, naming itself and the error: the boundary fails
// closed rather than skipping a rule it could not read.
func (p *Policy) Decide(ctx context.Context, in *Input) Decision {
	start := time.Now()
	d := Decision{PolicyID: p.id, PolicyHash: p.hash}
	act := in.activation()
	for i := range p.rules {
		r := &p.rules[i]
		out, _, err := r.prg.ContextEval(ctx, act)
		if err != nil {
			d.Effect, d.RuleID, d.Reason = event.EffectDeny, r.id, "evaluation error: "+err.Error()
			d.Eval = time.Since(start)
			return d
		}
		if out == types.True {
			d.Effect, d.RuleID, d.Reason = r.effect, r.id, r.reason
			d.Eval = time.Since(start)
			return d
		}
	}
	d.Effect, d.RuleID, d.Reason = event.EffectDeny, DefaultDenyRule, "no rule matched"
	d.Eval = time.Since(start)
	return d
}
