package policy

import (
	"fmt"
	"strings"
)

// ErrorCode is a stable name for a kind of load error. Tooling and tests
// match on codes, never on message text, so a code keeps its meaning once
// released.
type ErrorCode string

// Load error codes. Every error Load, LoadFiles and Parse return is an
// *Error carrying one of these.
const (
	CodeRead          ErrorCode = "policy_read"           // a file could not be read, or is too large
	CodeSyntax        ErrorCode = "policy_syntax"         // not YAML, or not the shape of a policy
	CodeUnknownKey    ErrorCode = "policy_unknown_key"    // a key this version does not know
	CodeMissing       ErrorCode = "policy_missing_field"  // a required field is absent or empty
	CodeInvalidValue  ErrorCode = "policy_invalid_value"  // a field's value is outside its domain
	CodeDuplicateRule ErrorCode = "policy_duplicate_rule" // two rules of a policy share an id
	CodeDuplicateTen  ErrorCode = "policy_duplicate_tenant"
	CodeCompile       ErrorCode = "policy_compile" // a CEL expression does not parse or type-check
	CodeNotBool       ErrorCode = "policy_not_bool"
	CodeEmptyBundle   ErrorCode = "policy_empty_bundle" // a directory holds no policy file
)

// Sentinels for errors.Is: an *Error matches the sentinel of its code.
var (
	ErrRead          = &Error{Code: CodeRead}
	ErrSyntax        = &Error{Code: CodeSyntax}
	ErrUnknownKey    = &Error{Code: CodeUnknownKey}
	ErrMissing       = &Error{Code: CodeMissing}
	ErrInvalidValue  = &Error{Code: CodeInvalidValue}
	ErrDuplicateRule = &Error{Code: CodeDuplicateRule}
	ErrDuplicateTen  = &Error{Code: CodeDuplicateTen}
	ErrCompile       = &Error{Code: CodeCompile}
	ErrNotBool       = &Error{Code: CodeNotBool}
	ErrEmptyBundle   = &Error{Code: CodeEmptyBundle}
)

// Error is a policy load error: what is wrong (Code, Msg) and where (File,
// Line, Column, Rule), so an operator can jump to it.
type Error struct {
	Code   ErrorCode
	File   string
	Line   int // 1-based; 0 when unknown
	Column int
	Rule   string // rule id, when the error is inside a rule
	Msg    string
	Err    error // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policy ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", e.Rule)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	fmt.Fprintf(&b, " [%s]", e.Code)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so callers
// can write errors.Is(err, policy.ErrNotBool).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Decision codes: the stable reason a decision is not an ordinary rule
// outcome. They are recorded in the decision event's code field.
const (
	// DecisionEvalError: a rule could not be evaluated; the request is
	// denied in its name (fail closed).
	DecisionEvalError = "policy_eval_error"
	// DecisionNoPolicy: the bundle has neither a policy for the tenant nor
	// a "*" default.
	DecisionNoPolicy = "policy_not_found"
	// DecisionBudgetExceeded: the allowing rule's call budget is spent.
	DecisionBudgetExceeded = "budget_exceeded"
	// DecisionBudgetNoScope: the allowing rule budgets per session or task
	// and the request has none, so it cannot be counted; denied rather than
	// let an unscoped caller escape the budget.
	DecisionBudgetNoScope = "budget_no_scope"
	// DecisionBudgetTableFull: the allowing rule's budget would need a new
	// counter for the session or task, and the tenant's share of the
	// budget table, or the whole table, is full of live counters. Denied,
	// as nothing could count the call; no budget has been spent, and no
	// one's counter is evicted to make room.
	DecisionBudgetTableFull = "budget_table_full"
	// DecisionTaskScope: a deny rule that reads within_task_scope()
	// denied a call outside what its task was declared for (its tool,
	// destination or data class not listed, or no declared task). The
	// detection rule task-scope-violation alerts on it, whatever the
	// rule's id.
	DecisionTaskScope = "task_scope_violation"
)
