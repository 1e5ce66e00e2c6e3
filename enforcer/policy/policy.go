package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/rampart-io/rampart/schema/event"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// DefaultDenyRule is the rule id of a decision no rule matched.
const DefaultDenyRule = "default-deny"

// CostLimit bounds the CEL cost of evaluating one expression, so a rule
// over large arguments cannot stall the request path.
const CostLimit = 100_000

// MaxFileBytes bounds one policy or fixture file.
const MaxFileBytes = 1 << 20

// Effect is what a rule does when it applies.
type Effect string

// Rule effects. Audit is shadow mode: the rule is recorded in the
// decision's Shadow list when it applies, and evaluation goes on.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
	Audit Effect = "audit"
)

// Policy is a compiled policy bundle: one policy per tenant and an
// optional "*" default, each an ordered list of rules. It is immutable and
// safe for concurrent use.
type Policy struct {
	id      string
	hash    string
	files   []string
	tenants map[string]*tenantPolicy
	def     *tenantPolicy
	budgets *Budgets
	clock   func() time.Time
}

// tenantPolicy is one policy file's rules.
type tenantPolicy struct {
	id, tenant, file string
	rules            []rule
}

type rule struct {
	id         string
	file       string
	line       int
	effect     Effect
	reason     string
	match      cel.Program
	condition  cel.Program // nil when the rule has none
	redact     []string
	record     bool   // record_args
	auditMode  string // on_audit_unavailable
	credential *credential.Spec
	budget     *Budget
	metered    bool // some expression runs under CEL's runtime cost meter
	// scoped marks a rule reading within_task_scope(): a call it denies
	// outside its task's scope is recorded as DecisionTaskScope.
	scoped bool
}

// Decision is the outcome of a policy for one request.
type Decision struct {
	Effect     event.Effect `json:"effect"`
	PolicyID   string       `json:"policy_id"` // the tenant's policy that decided ("" when there is none)
	RuleID     string       `json:"rule_id"`
	PolicyHash string       `json:"policy_hash"` // the bundle's content hash, see Policy.Hash
	Reason     string       `json:"reason,omitempty"`
	// Code is a Decision* code when the decision is not a rule's ordinary
	// outcome (evaluation error, budget), "" otherwise.
	Code string `json:"code,omitempty"`
	// Shadow lists the audit rules that applied before the decision, in
	// rule order: what would have decided had they been allow or deny.
	Shadow []string `json:"shadow,omitempty"`
	// ShadowErrors lists the audit rules that failed to evaluate. An audit
	// rule never decides, so its failure is recorded, not denied.
	ShadowErrors []string      `json:"shadow_errors,omitempty"`
	Obligations  Obligations   `json:"obligations,omitzero"`
	Eval         time.Duration `json:"eval_ns"`
}

// Event returns d as the decision of an audit event.
func (d Decision) Event() *event.Decision {
	return &event.Decision{
		Effect:     d.Effect,
		PolicyID:   d.PolicyID,
		RuleID:     d.RuleID,
		PolicyHash: d.PolicyHash,
		Reason:     d.Reason,
		Code:       d.Code,
		EvalNanos:  d.Eval.Nanoseconds(),
	}
}

// Option configures loading.
type Option func(*options)

type options struct {
	budgets *Budgets
	clock   func() time.Time
}

// WithBudgets makes the policy charge rule budgets to b. Without it each
// loaded Policy has budgets of its own (default limits); a Watcher
// shares one Budgets across reloads.
func WithBudgets(b *Budgets) Option { return func(o *options) { o.budgets = b } }

// WithClock sets the clock of the CEL variable now and of budget windows
// (time.Now by default).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// sourceFile is one file of a bundle.
type sourceFile struct {
	name string // relative to the bundle root, used in errors and the hash
	data []byte
}

// Load reads and compiles the bundle at path: a single policy file, or a
// directory whose *.yaml and *.yml files (not *_test.yaml fixtures, not
// dot-files, not subdirectories) are the bundle.
func Load(path string, opts ...Option) (*Policy, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	files, err := bundleFiles(path, fi.IsDir())
	if err != nil {
		return nil, err
	}
	src, err := readFiles(files)
	if err != nil {
		return nil, err
	}
	id := ""
	if fi.IsDir() {
		id = filepath.Base(filepath.Clean(path))
		if len(src) == 0 {
			return nil, &Error{Code: CodeEmptyBundle, File: path, Msg: "no policy files (*.yaml, *.yml) in the directory"}
		}
	}
	return compileBundle(id, src, opts)
}

// LoadFiles reads and compiles a bundle of the given policy files, named
// id. Each file is named in errors and in the hash by its base name, so
// base names must be distinct.
func LoadFiles(id string, paths []string, opts ...Option) (*Policy, error) {
	src, err := readFiles(paths)
	if err != nil {
		return nil, err
	}
	if len(src) == 0 {
		return nil, &Error{Code: CodeEmptyBundle, File: id, Msg: "no policy files"}
	}
	return compileBundle(id, src, opts)
}

// Parse compiles a bundle of one policy file held in memory; name
// (usually the file path) names it in errors.
func Parse(name string, data []byte, opts ...Option) (*Policy, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Code: CodeRead, File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	return compileBundle("", []sourceFile{{name: name, data: data}}, opts)
}

// isPolicyFile reports whether a directory entry belongs to a bundle.
func isPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") || isFixtureFile(name) {
		return false
	}
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// isFixtureFile reports whether name is a test fixture file.
func isFixtureFile(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml"))
}

// bundleFiles lists the files of the bundle at path, sorted.
func bundleFiles(path string, dir bool) ([]string, error) {
	if !dir {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: path, Err: err}
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && isPolicyFile(e.Name()) {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	return files, nil // ReadDir sorts by name
}

func readFiles(paths []string) ([]sourceFile, error) {
	src := make([]sourceFile, 0, len(paths))
	for _, p := range paths {
		b, err := readLimited(p)
		if err != nil {
			return nil, err
		}
		src = append(src, sourceFile{name: filepath.Base(p), data: b})
	}
	return src, nil
}

func readLimited(p string) ([]byte, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: p, Err: err}
	}
	if fi.Size() > MaxFileBytes {
		return nil, &Error{Code: CodeRead, File: p, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, &Error{Code: CodeRead, File: p, Err: err}
	}
	return b, nil
}

// bundleHash is "sha256:" and the SHA-256 of the files' sha256sum
// listing: for each file in name order, its hex SHA-256, two spaces, its
// name and a newline. So `sha256sum $(ls | LC_ALL=C sort) | sha256sum` in
// the bundle directory reproduces it, and renaming a file changes it.
func bundleHash(src []sourceFile) string {
	sorted := slices.Clone(src)
	slices.SortFunc(sorted, func(a, b sourceFile) int { return strings.Compare(a.name, b.name) })
	h := sha256.New()
	for _, f := range sorted {
		sum := sha256.Sum256(f.data)
		fmt.Fprintf(h, "%s  %s\n", hex.EncodeToString(sum[:]), f.name)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func compileBundle(id string, src []sourceFile, opts []Option) (*Policy, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.budgets == nil {
		o.budgets = NewBudgets(BudgetLimits{})
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	env, err := celEnv()
	if err != nil {
		return nil, &Error{Code: CodeCompile, File: id, Msg: "CEL environment", Err: err}
	}
	p := &Policy{id: id, hash: bundleHash(src), tenants: map[string]*tenantPolicy{}, budgets: o.budgets, clock: o.clock}
	tenantFile := map[string]string{}
	for _, f := range src {
		if len(f.data) > MaxFileBytes {
			return nil, &Error{Code: CodeRead, File: f.name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}
		}
		spec, err := decodeFile(f.name, f.data)
		if err != nil {
			return nil, err
		}
		if other, dup := tenantFile[spec.Tenant]; dup {
			return nil, &Error{Code: CodeDuplicateTen, File: f.name, Msg: fmt.Sprintf("tenant %q already has a policy in %s", spec.Tenant, other)}
		}
		tenantFile[spec.Tenant] = f.name
		tp, err := compilePolicy(env, f.name, spec)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f.name)
		if spec.Tenant == AnyTenant {
			p.def = tp
		} else {
			p.tenants[spec.Tenant] = tp
		}
		if len(src) == 1 && p.id == "" {
			p.id = spec.ID
		}
	}
	return p, nil
}

func compilePolicy(env *cel.Env, file string, spec *fileSpec) (*tenantPolicy, error) {
	tp := &tenantPolicy{id: spec.ID, tenant: spec.Tenant, file: file}
	seen := map[string]int{DefaultDenyRule: 0}
	for _, rs := range spec.Rules {
		at := func(code ErrorCode, line int, format string, args ...any) *Error {
			return &Error{Code: code, File: file, Line: line, Rule: rs.ID, Msg: fmt.Sprintf(format, args...)}
		}
		if prev, dup := seen[rs.ID]; dup {
			if prev == 0 {
				return nil, at(CodeDuplicateRule, rs.Line, "rule id %q is reserved (not unique)", rs.ID)
			}
			return nil, at(CodeDuplicateRule, rs.Line, "rule id is not unique (first at line %d)", prev)
		}
		seen[rs.ID] = rs.Line
		r := rule{id: rs.ID, file: file, line: rs.Line, reason: rs.Reason, redact: rs.Redact, record: rs.RecordArgs, auditMode: rs.AuditMode, budget: rs.Budget, credential: rs.Credential,
			scoped: readsTaskScope(rs.Match) || readsTaskScope(rs.Condition)}
		switch Effect(rs.Effect) {
		case Allow, Deny, Audit:
			r.effect = Effect(rs.Effect)
		case "":
			return nil, at(CodeMissing, rs.Line, "effect is required (allow, deny or audit)")
		default:
			return nil, at(CodeInvalidValue, rs.EffectLine, "effect must be allow, deny or audit, not %q", rs.Effect)
		}
		if r.budget != nil && r.effect != Allow {
			return nil, at(CodeInvalidValue, rs.BudgetLine, "a budget limits allowed calls; it needs effect allow, not %s", r.effect)
		}
		if r.credential != nil && r.effect != Allow {
			return nil, at(CodeInvalidValue, rs.CredentialLine, "a credential is put on allowed calls; it needs effect allow, not %s", r.effect)
		}
		if rs.Match == "" {
			return nil, at(CodeMissing, rs.Line, "match is required")
		}
		var err *Error
		var metered bool
		if r.match, metered, err = compileExpr(env, "match", rs.Match, rs.MatchLine); err != nil {
			err.File, err.Rule = file, rs.ID
			return nil, err
		}
		r.metered = metered
		if rs.Condition != "" {
			if r.condition, metered, err = compileExpr(env, "condition", rs.Condition, rs.CondLine); err != nil {
				err.File, err.Rule = file, rs.ID
				return nil, err
			}
			r.metered = r.metered || metered
		}
		tp.rules = append(tp.rules, r)
	}
	return tp, nil
}

// compileExpr parses, type-checks and plans one bool expression, and
// reports whether it runs metered (see programOptions).
func compileExpr(env *cel.Env, what, expr string, line int) (cel.Program, bool, *Error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		e := &Error{Code: CodeCompile, Line: line, Msg: what + ": " + iss.Err().Error()}
		if errs := iss.Errors(); len(errs) > 0 {
			loc := errs[0].Location
			e.Line = line + max(loc.Line(), 1) - 1
			e.Msg = fmt.Sprintf("%s: %s (expression line %d, column %d)", what, errs[0].Message, loc.Line(), loc.Column()+1)
		}
		return nil, false, e
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, false, &Error{Code: CodeNotBool, Line: line, Msg: fmt.Sprintf("%s must be a bool expression, is %s", what, ast.OutputType())}
	}
	popts, metered := programOptions(env, ast)
	prg, err := env.Program(ast, popts...)
	if err != nil {
		return nil, false, &Error{Code: CodeCompile, Line: line, Msg: what, Err: err}
	}
	return prg, metered, nil
}

// celEnv is built once: building an environment costs milliseconds and
// it is safe for concurrent use.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	str := func(name string) cel.EnvOption { return cel.Variable(name, cel.StringType) }
	opts := []cel.EnvOption{
		str("tenant"), str("subject"), str("actor"), str("spiffe_id"), str("issuer"),
		str("session"), str("session_source"), str("task_source"),
		str("method"), str("host"), str("path"), str("query"), str("resource"), str("rpc_kind"), str("rpc_method"),
		str("tool"), str("prompt"),
		str("destination"), str("data_class"),
		cel.Variable("chain", cel.ListType(cel.StringType)),
		cel.Variable("chain_depth", cel.IntType),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("now", cel.TimestampType),
		// JSON arguments mix ints and doubles; let args.limit > 10 work on both.
		cel.CrossTypeNumericComparisons(true),
	}
	opts = append(opts, taskFunctions()...)
	return cel.NewEnv(append(opts, functions()...)...)
})

// ID returns the bundle's id: the policy id of a single-file bundle, the
// directory name of a directory, the id given to LoadFiles.
func (p *Policy) ID() string { return p.id }

// Hash returns the bundle's content hash, "sha256:<hex>" (see Load).
func (p *Policy) Hash() string { return p.hash }

// Files returns the names of the bundle's files, in load order.
func (p *Policy) Files() []string { return slices.Clone(p.files) }

// Tenants returns the tenants with a policy of their own, sorted; the
// default policy, if any, is AnyTenant.
func (p *Policy) Tenants() []string {
	var ts []string
	for t := range p.tenants {
		ts = append(ts, t)
	}
	if p.def != nil {
		ts = append(ts, AnyTenant)
	}
	slices.Sort(ts)
	return ts
}

// Budgets returns the counters the policy charges.
func (p *Policy) Budgets() *Budgets { return p.budgets }

// policyFor returns the policy deciding for tenant.
func (p *Policy) policyFor(tenant string) *tenantPolicy {
	if tp, ok := p.tenants[tenant]; ok {
		return tp
	}
	return p.def
}

// Decide evaluates the tenant's policy (or the "*" default) against in.
// Rules run in order; for each, match is evaluated, then condition when
// match is true, and the rule applies when both are true. An applying
// audit rule is added to Shadow and evaluation goes on; the first applying
// allow or deny rule decides; none is a deny by DefaultDenyRule. A rule
// that fails to evaluate denies in its own name with DecisionEvalError:
// the boundary fails closed rather than skip a rule it could not read. An
// allow whose rule has a budget is charged to the policy's Budgets and
// becomes a deny with DecisionBudgetExceeded once the budget is spent, or
// with DecisionBudgetTableFull when the budget table has no room to count
// a new session or task.
func (p *Policy) Decide(ctx context.Context, in *Input) Decision {
	return p.decide(ctx, in, p.budgets, nil)
}

// RuleTrace is how one rule fared in an evaluation.
type RuleTrace struct {
	Rule      string `json:"rule"`
	Effect    Effect `json:"effect"`
	Line      int    `json:"line"`
	Metered   bool   `json:"metered,omitempty"`   // runs under CEL's runtime cost meter
	Match     string `json:"match"`               // "true", "false" or "error"
	Condition string `json:"condition,omitempty"` // "true", "false", "error"; "" when not evaluated or absent
	Error     string `json:"error,omitempty"`
}

// decide is Decide charging budgets to b (none when nil) and appending
// each rule's outcome to trace when not nil.
func (p *Policy) decide(ctx context.Context, in *Input, b *Budgets, trace *[]RuleTrace) Decision {
	began := time.Now() // Eval is wall time, whatever clock the policy reads
	start := p.clock()
	d := Decision{PolicyHash: p.hash}
	tp := p.policyFor(in.Tenant)
	if tp == nil {
		d.Effect, d.RuleID, d.Code = event.EffectDeny, DefaultDenyRule, DecisionNoPolicy
		d.Reason = fmt.Sprintf("no policy for tenant %q and no default policy", in.Tenant)
		d.Eval = time.Since(began)
		return d
	}
	d.PolicyID = tp.id
	now := in.Now
	if now.IsZero() {
		now = start
	}
	act := newActivation(in, now)
	defer act.release()
	var decided *rule
	for i := range tp.rules {
		r := &tp.rules[i]
		if err := ctx.Err(); err != nil {
			d.Effect, d.RuleID, d.Code = event.EffectDeny, r.id, DecisionEvalError
			d.Reason = "evaluation stopped: " + err.Error()
			break
		}
		var rt *RuleTrace
		if trace != nil {
			*trace = append(*trace, RuleTrace{Rule: r.id, Effect: r.effect, Line: r.line, Metered: r.metered})
			rt = &(*trace)[len(*trace)-1]
		}
		ok, err := r.applies(act, rt)
		if err != nil {
			if r.effect == Audit {
				d.ShadowErrors = append(d.ShadowErrors, r.id)
				continue
			}
			d.Effect, d.RuleID, d.Code = event.EffectDeny, r.id, DecisionEvalError
			d.Reason = "evaluation error: " + err.Error()
			break
		}
		if !ok {
			continue
		}
		if len(r.redact) > 0 {
			d.Obligations.Redact = append(d.Obligations.Redact, r.redact...)
		}
		if r.effect == Audit {
			d.Shadow = append(d.Shadow, r.id)
			continue
		}
		decided = r
		d.Effect, d.RuleID, d.Reason = event.Effect(r.effect), r.id, r.reason
		d.Obligations.RecordArgs, d.Obligations.OnAuditUnavailable = r.record, r.auditMode
		d.Obligations.Credential = r.credential
		if r.effect == Deny && r.scoped && !WithinTaskScope(in) {
			d.Code = DecisionTaskScope
		}
		break
	}
	if d.RuleID == "" {
		d.Effect, d.RuleID, d.Reason = event.EffectDeny, DefaultDenyRule, "no rule matched"
	}
	if decided != nil && decided.budget != nil {
		d.Obligations.Budget = decided.budget
		if b != nil {
			chargeBudget(b, &d, tp, decided, in, start)
		}
	}
	d.Eval = time.Since(began)
	return d
}

// applies evaluates r's match and, when true, its condition.
func (r *rule) applies(act *activation, rt *RuleTrace) (bool, error) {
	ok, err := evalBool(r.match, act)
	if rt != nil {
		rt.Match = outcome(ok, err)
	}
	if err != nil || !ok || r.condition == nil {
		if rt != nil && err != nil {
			rt.Error = err.Error()
		}
		return ok, err
	}
	ok, err = evalBool(r.condition, act)
	if rt != nil {
		rt.Condition = outcome(ok, err)
		if err != nil {
			rt.Error = err.Error()
		}
	}
	return ok, err
}

func outcome(ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case ok:
		return "true"
	}
	return "false"
}

// evalBool runs a bool program. Eval rather than ContextEval: the context
// is checked between rules, and each program is bounded by CostLimit, so
// the per-evaluation context plumbing (a cancel context and an async gate,
// allocated per call) buys nothing here.
func evalBool(prg cel.Program, act *activation) (bool, error) {
	out, _, err := prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok { // type-checked as bool; kept as a guard, failing closed
		return false, fmt.Errorf("result is %s, not bool", out.Type())
	}
	return bool(b), nil
}

// chargeBudget counts an allowed call against r's budget, turning d into
// a deny when the budget is spent or the call cannot be counted.
func chargeBudget(b *Budgets, d *Decision, tp *tenantPolicy, r *rule, in *Input, now time.Time) {
	scope, source := in.Session, in.SessionSource
	if r.budget.Per == PerTask {
		scope, source = in.Task, in.TaskSource
	}
	if scope != "" && source == SourceClient {
		// An id the client made up is no scope: presenting a fresh one per
		// call would open a fresh budget per call. Its calls count
		// together, as all of the principal's client-chosen scopes.
		scope = "\x00client\x00" + in.Issuer + "\x00" + in.Subject
	}
	if scope == "" {
		d.Effect, d.Code = event.EffectDeny, DecisionBudgetNoScope
		d.Reason = fmt.Sprintf("rule %s budgets calls per %s and the request has no %s", r.id, r.budget.Per, r.budget.Per)
		return
	}
	used, res := b.charge(in.Tenant, budgetKeyOf(tp.id, r.id, r.budget.Per, scope), r.budget, now)
	d.Obligations.BudgetUsed = used
	switch res {
	case budgetSpent:
		d.Effect, d.Code = event.EffectDeny, DecisionBudgetExceeded
		d.Reason = fmt.Sprintf("budget of %d calls per %s in %s spent", r.budget.Calls, r.budget.Per, r.budget.Window)
	case tenantFull:
		d.Effect, d.Code = event.EffectDeny, DecisionBudgetTableFull
		d.Reason = fmt.Sprintf("budget table full: the tenant's %d counters are in use, so a new %s cannot be counted until a window ends", b.limits.MaxPerTenant, r.budget.Per)
	case tableFull:
		d.Effect, d.Code = event.EffectDeny, DecisionBudgetTableFull
		d.Reason = fmt.Sprintf("budget table full: all %d counters are in use across tenants, so a new %s cannot be counted until a window ends", b.limits.MaxTotal, r.budget.Per)
	}
}
