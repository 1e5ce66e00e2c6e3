package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/rampart-io/rampart/schema/event"
)

// Correlation names how a rule relates the events it matches, after
// Sigma's correlation rules.
type Correlation string

// The correlations. A rule has exactly one.
const (
	EventCount Correlation = "event_count" // at least (gte) or at most (lte) N events per group in a window
	ValueCount Correlation = "value_count" // at least N distinct values of a field per group in a window
	Sequence   Correlation = "sequence"    // steps in order, within a window
	AllOf      Correlation = "all_of"      // every step, in any order, within a window (Sigma's temporal)
	NewValue   Correlation = "new_value"   // a field's value not seen for the group within a lookback
	Absence    Correlation = "absence"     // a match not followed by an expected event within a window
	Gap        Correlation = "gap"         // sequence numbers of a group missing for longer than a grace
	NoPrior    Correlation = "no_prior"    // a match not preceded by an expected event of its group within a window
)

// Bounds on what a rule may ask, so that per-group state stays bounded.
const (
	// CostLimit bounds the work of one CEL evaluation (cel-go cost
	// units). An expression whose worst case, estimated at load with
	// every input value at MaxInputSize, is within it runs unmetered;
	// any other runs under cel.CostLimit and, past it, stops with an
	// error: no match, counted in rampart.detect.eval_errors.
	CostLimit = 100_000
	// MaxInputSize is the size the static cost estimate assumes for any
	// string, list or map of an event.
	MaxInputSize = 1 << 20
	// MaxThreshold bounds gte and lte: an event_count rule keeps up to
	// that many event references per group.
	MaxThreshold = 10_000
	// MaxSteps bounds the steps of a sequence or all_of.
	MaxSteps = 16
	// MaxWindow bounds windows and lookbacks: state lives that long.
	MaxWindow = 400 * 24 * time.Hour
	// MaxGroupBy bounds the group_by fields of a rule.
	MaxGroupBy = 8
)

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// tagRE: a catalogue and an entry, such as owasp-llm:LLM06,
// owasp-agentic:T2 or maestro:L3.
var tagRE = regexp.MustCompile(`^[a-z][a-z0-9-]*:[A-Za-z0-9._-]+$`)

// Rule is one compiled detection rule.
type Rule struct {
	ID          string
	Title       string
	Description string
	Severity    event.Severity
	Tags        []string
	// Tenant scopes the rule: it sees only that tenant's events. Empty
	// means every tenant, and the events without one (policy and
	// checkpoint events, unidentified callers).
	Tenant string
	// GroupBy lists the fields whose values, with the tenant, make a
	// group; state and alerts are per group.
	GroupBy []string
	// Correlation and Window (the lookback of new_value) say how the
	// rule's events relate.
	Correlation Correlation
	Window      time.Duration
	// File is the rule file the rule came from.
	File string

	match     *expr
	groupFns  []func(*activation) string
	valueFn   func(*activation) string // value_count, new_value
	valueName string
	steps     []step        // sequence, all_of
	expect    *expr         // absence; no_prior's prior
	deadline  *timeExpr     // absence, optional: the group's own deadline
	threshold int           // gte or lte
	atMost    bool          // event_count lte
	grace     time.Duration // gap
	def       string        // hash of the definition: Swap keeps state when it is unchanged
	kinds     kindMask      // the kinds any of its expressions can match; 0: any
}

type step struct {
	name  string
	match *expr
}

// expr is one planned CEL bool expression.
type expr struct {
	src   string
	prg   cel.Program
	kinds kindMask // the kinds it can match; 0: any
	eqs   []eqConstraint
	// guard, for a metered expression, is the conjunction of its
	// top-level conjuncts that are cheap enough to run unmetered: when it
	// is false the whole is, and the meter (a fifth of the engine's time
	// when it ran on every decision) is skipped.
	guard cel.Program
}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := append(celVariables(), cel.CrossTypeNumericComparisons(true))
	return cel.NewEnv(opts...)
})

// sizeEstimator makes the static estimate assume MaxInputSize for every
// input value.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: MaxInputSize}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// compileExpr parses, type-checks and plans one bool expression.
func compileExpr(what, src string) (*expr, error) {
	env, ast, prg, metered, err := compileTyped(what, src, cel.BoolType, CodeNotBool, "bool")
	if err != nil {
		return nil, err
	}
	x := &expr{src: src, prg: prg, kinds: requiredKinds(ast), eqs: constraintsOf(ast.NativeRep().Expr())}
	if metered {
		x.guard = cheapGuard(env, ast)
	}
	return x, nil
}

// compileTyped parses src, checks that it is of type want (else an Error
// with code wrong), and plans it, metered unless its estimated worst case
// is within CostLimit.
func compileTyped(what, src string, want *cel.Type, wrong ErrorCode, kind string) (env *cel.Env, ast *cel.Ast, prg cel.Program, metered bool, err error) {
	if env, err = celEnv(); err != nil {
		return nil, nil, nil, false, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, nil, nil, false, &Error{Code: CodeCompile, Msg: what + ": " + iss.Err().Error()}
	}
	if !ast.OutputType().IsExactType(want) {
		return nil, nil, nil, false, &Error{Code: wrong, Msg: fmt.Sprintf("%s must be a %s expression, is %s", what, kind, ast.OutputType())}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if metered = !bounded(env, ast); metered {
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	if prg, err = env.Program(ast, opts...); err != nil {
		return nil, nil, nil, false, &Error{Code: CodeCompile, Msg: what, Err: err}
	}
	return env, ast, prg, metered, nil
}

// bounded reports whether an expression's estimated worst case is within
// CostLimit, so it may run unmetered.
func bounded(env *cel.Env, a *cel.Ast) bool {
	est, err := env.EstimateCost(a, sizeEstimator{})
	return err == nil && est.Max <= CostLimit
}

// cheapGuard compiles the bounded ones of a's top-level conjuncts into
// one unmetered program; nil when there are none.
func cheapGuard(env *cel.Env, a *cel.Ast) cel.Program {
	var conj []celast.Expr
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
			for _, x := range e.AsCall().Args() {
				walk(x)
			}
			return
		}
		conj = append(conj, e)
	}
	walk(a.NativeRep().Expr())
	var parts []string
	for _, c := range conj {
		src, err := cel.ExprToString(c, a.NativeRep().SourceInfo())
		if err != nil {
			continue
		}
		sub, iss := env.Compile(src)
		if iss.Err() != nil || !bounded(env, sub) {
			continue
		}
		parts = append(parts, "("+src+")")
	}
	if len(parts) == 0 || len(parts) == len(conj) {
		return nil
	}
	g, iss := env.Compile(strings.Join(parts, " && "))
	if iss.Err() != nil || !g.OutputType().IsExactType(cel.BoolType) {
		return nil
	}
	prg, err := env.Program(g, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil
	}
	return prg
}

// timeExpr is one planned CEL timestamp expression.
type timeExpr struct {
	src string
	prg cel.Program
}

// compileTimeExpr parses, type-checks and plans one timestamp
// expression, metered as compileExpr meters a bool one.
func compileTimeExpr(what, src string) (*timeExpr, error) {
	_, _, prg, _, err := compileTyped(what, src, cel.TimestampType, CodeNotTimestamp, "timestamp")
	if err != nil {
		return nil, err
	}
	return &timeExpr{src: src, prg: prg}, nil
}

// eval runs the expression on the activation: its time in unix ns.
func (x *timeExpr) eval(a *activation) (int64, error) {
	out, _, err := x.prg.Eval(a)
	if err != nil {
		return 0, err
	}
	ts, ok := out.(types.Timestamp)
	if !ok {
		return 0, fmt.Errorf("result is %s, not timestamp", out.Type())
	}
	if ts.Year() < 1678 || ts.Year() > 2261 {
		return 0, fmt.Errorf("deadline %s is outside the range of event times", ts.Time)
	}
	return ts.UnixNano(), nil
}

// eval runs the expression on the activation: true only for a bool true
// result; an error (a missing map key, a wrong type, the cost limit) is
// reported and is no match.
func (x *expr) eval(a *activation) (bool, error) {
	if x.kinds != 0 && x.kinds&a.kind == 0 || !holds(x.eqs, a) {
		return false, nil
	}
	if x.guard != nil {
		// A guard that errs decides nothing: the whole runs, and its own
		// result (or error) counts.
		if out, _, err := x.guard.Eval(a); err == nil && out == types.False {
			return false, nil
		}
	}
	out, _, err := x.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("result is %s, not bool", out.Type())
	}
	return bool(b), nil
}

// compileRule validates and compiles one decoded rule.
func compileRule(file string, sp *ruleSpec) (*Rule, error) {
	fail := func(code ErrorCode, format string, args ...any) error {
		return &Error{Code: code, File: file, Line: sp.line, Rule: sp.ID, Msg: fmt.Sprintf(format, args...)}
	}
	at := func(err error) error {
		if e, ok := err.(*Error); ok {
			e.File, e.Line, e.Rule = file, sp.line, sp.ID
		}
		return err
	}
	switch {
	case sp.ID == "":
		return nil, fail(CodeMissing, "id is required")
	case !idRE.MatchString(sp.ID):
		return nil, fail(CodeInvalidValue, "id must be lower-case letters, digits, '.', '_' or '-' (at most 128), not %q", sp.ID)
	case sp.ID == StateExhaustedRule:
		return nil, fail(CodeInvalidValue, "id %q is the engine's own alerts'", sp.ID)
	case sp.Title == "":
		return nil, fail(CodeMissing, "title is required")
	case sp.Description == "":
		return nil, fail(CodeMissing, "description is required")
	case sp.Severity == "":
		return nil, fail(CodeMissing, "severity is required (info, low, medium, high or critical)")
	case !event.Severity(sp.Severity).Valid():
		return nil, fail(CodeInvalidValue, "severity must be info, low, medium, high or critical, not %q", sp.Severity)
	case len(sp.Tags) == 0:
		return nil, fail(CodeMissing, "tags are required: the catalogue entries the rule stands for, such as owasp-llm:LLM06")
	case len(sp.GroupBy) > MaxGroupBy:
		return nil, fail(CodeInvalidValue, "at most %d group_by fields", MaxGroupBy)
	}
	for _, t := range sp.Tags {
		if !tagRE.MatchString(t) {
			return nil, fail(CodeInvalidValue, "tag %q is not catalogue:entry (owasp-llm:LLM06, owasp-agentic:T2, maestro:L3)", t)
		}
	}
	r := &Rule{
		ID: sp.ID, Title: sp.Title, Description: sp.Description, Severity: event.Severity(sp.Severity),
		Tags: slices.Clone(sp.Tags), Tenant: sp.Tenant, GroupBy: slices.Clone(sp.GroupBy), File: file,
	}
	seen := map[string]bool{}
	for _, g := range sp.GroupBy {
		fn, ok := scalarField(g)
		if !ok {
			return nil, fail(CodeUnknownField, "group_by field %q is not a string or int event field", g)
		}
		if g == "tenant" {
			return nil, fail(CodeInvalidValue, "group_by tenant: every group is per tenant already")
		}
		if seen[g] {
			return nil, fail(CodeInvalidValue, "group_by field %q twice", g)
		}
		seen[g] = true
		r.groupFns = append(r.groupFns, fn)
	}
	if sp.Match != "" {
		m, err := compileExpr("match", sp.Match)
		if err != nil {
			return nil, at(err)
		}
		r.match = m
	}
	var n int
	for _, c := range []bool{sp.EventCount != nil, sp.ValueCount != nil, sp.Sequence != nil, sp.AllOf != nil, sp.NewValue != nil, sp.Absence != nil, sp.Gap != nil, sp.NoPrior != nil} {
		if c {
			n++
		}
	}
	if n != 1 {
		return nil, fail(CodeCorrelation, "a rule needs exactly one of event_count, value_count, sequence, all_of, new_value, absence, gap, no_prior; it has %d", n)
	}
	window := func(what string, d duration) error {
		if d <= 0 || time.Duration(d) > MaxWindow {
			return fail(CodeInvalidValue, "%s must be a positive duration up to %s, not %s", what, MaxWindow, time.Duration(d))
		}
		r.Window = time.Duration(d)
		return nil
	}
	threshold := func(what string, v int, zero bool) error {
		if v < 0 || (v == 0 && !zero) || v > MaxThreshold {
			return fail(CodeInvalidValue, "%s must be between 1 and %d, not %d", what, MaxThreshold, v)
		}
		r.threshold = v
		return nil
	}
	valueField := func(what, name string) error {
		fn, ok := scalarField(name)
		if !ok {
			return fail(CodeUnknownField, "%s field %q is not a string or int event field", what, name)
		}
		r.valueFn, r.valueName = fn, name
		return nil
	}
	needMatch := func() error {
		if r.match == nil {
			return fail(CodeMissing, "match is required for %s", r.Correlation)
		}
		return nil
	}
	var err error
	switch {
	case sp.EventCount != nil:
		r.Correlation = EventCount
		c := sp.EventCount
		switch {
		case (c.Gte == nil) == (c.Lte == nil):
			err = fail(CodeCorrelation, "event_count needs exactly one of gte and lte")
		case c.Gte != nil:
			err = threshold("event_count gte", *c.Gte, false)
		default:
			r.atMost = true
			err = threshold("event_count lte", *c.Lte, false)
		}
		err = firstErr(err, window("event_count window", c.Window), needMatch())
	case sp.ValueCount != nil:
		r.Correlation = ValueCount
		c := sp.ValueCount
		err = firstErr(valueField("value_count", c.Field), threshold("value_count gte", c.Gte, false),
			window("value_count window", c.Window), needMatch())
	case sp.NewValue != nil:
		r.Correlation = NewValue
		c := sp.NewValue
		err = firstErr(valueField("new_value", c.Field), window("new_value lookback", c.Lookback), needMatch())
	case sp.Gap != nil:
		r.Correlation = Gap
		c := sp.Gap
		err = firstErr(window("gap window", c.Window), needMatch())
		r.grace = time.Duration(c.Grace)
		switch {
		case err != nil:
		case c.Grace <= 0 || time.Duration(c.Grace) > r.Window:
			err = fail(CodeInvalidValue, "gap grace must be a positive duration up to the window (%s), not %s", r.Window, time.Duration(c.Grace))
		case sp.Tenant != "":
			err = fail(CodeInvalidValue, "gap cannot be scoped to a tenant: an instance numbers the events of all its tenants together")
		case !slices.Contains(sp.GroupBy, "instance") || !slices.Contains(sp.GroupBy, "epoch"):
			err = fail(CodeInvalidValue, "gap needs group_by [instance, epoch]: sequence numbers are dense per instance and epoch")
		}
	case sp.Absence != nil:
		r.Correlation = Absence
		c := sp.Absence
		err = firstErr(window("absence window", c.Window), needMatch())
		if err == nil {
			if c.Expect == "" {
				err = fail(CodeMissing, "absence needs expect: the CEL match of the event that must follow")
			} else if r.expect, err = compileExpr("absence expect", c.Expect); err != nil {
				err = at(err)
			}
		}
		if err == nil && c.Deadline != "" {
			if r.deadline, err = compileTimeExpr("absence deadline", c.Deadline); err != nil {
				err = at(err)
			}
		}
	case sp.NoPrior != nil:
		r.Correlation = NoPrior
		c := sp.NoPrior
		err = firstErr(window("no_prior window", c.Window), needMatch())
		if err == nil {
			if c.Prior == "" {
				err = fail(CodeMissing, "no_prior needs prior: the CEL match of the event that must come first")
			} else if r.expect, err = compileExpr("no_prior prior", c.Prior); err != nil {
				err = at(err)
			}
		}
	default:
		c, what := sp.Sequence, Sequence
		if c == nil {
			c, what = sp.AllOf, AllOf
		}
		r.Correlation = what
		err = window(string(what)+" window", c.Window)
		if err == nil && (len(c.Steps) < 2 || len(c.Steps) > MaxSteps) {
			err = fail(CodeCorrelation, "%s needs between 2 and %d steps, has %d", what, MaxSteps, len(c.Steps))
		}
		for i, st := range c.Steps {
			if err != nil {
				break
			}
			label := fmt.Sprintf("%s step %d", what, i+1)
			if st.Name != "" {
				label += " (" + st.Name + ")"
			}
			if st.Match == "" {
				err = fail(CodeMissing, "%s: match is required", label)
				break
			}
			var x *expr
			if x, err = compileExpr(label+" match", st.Match); err != nil {
				err = at(err)
				break
			}
			r.steps = append(r.steps, step{name: st.Name, match: x})
		}
	}
	if err != nil {
		return nil, err
	}
	r.kinds = r.kindsSeen()
	def, _ := json.Marshal(sp) // plain data: cannot fail
	sum := sha256.Sum256(def)
	r.def = hex.EncodeToString(sum[:])
	return r, nil
}

// kindsSeen is the union of the kinds its expressions can match: an
// event of another kind cannot touch the rule. The top-level match, when
// there is one, must match too, so it alone restricts, except for
// absence and no_prior, whose expected event need not match it.
func (r *Rule) kindsSeen() kindMask {
	var xs []*expr
	switch {
	case r.expect != nil:
		xs = []*expr{r.match, r.expect}
	case r.match != nil && r.match.kinds != 0:
		return r.match.kinds
	case len(r.steps) > 0:
		for _, st := range r.steps {
			xs = append(xs, st.match)
		}
	default:
		return 0
	}
	var m kindMask
	for _, x := range xs {
		if x == nil || x.kinds == 0 {
			return 0
		}
		m |= x.kinds
	}
	return m
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
