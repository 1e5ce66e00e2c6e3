package detect

import (
	"fmt"
	"strings"
)

// ErrorCode is a stable name for a kind of rule load error: tooling and
// tests match on codes, never on message text.
type ErrorCode string

// Load error codes. Every error LoadDir, LoadFS and Merge return is an
// *Error carrying one of these.
const (
	CodeRead          ErrorCode = "rule_read"           // a file or directory could not be read, or is too large
	CodeSyntax        ErrorCode = "rule_syntax"         // not YAML, or not the shape of a rule
	CodeUnknownKey    ErrorCode = "rule_unknown_key"    // a key this version does not know
	CodeMissing       ErrorCode = "rule_missing_field"  // a required field is absent or empty
	CodeInvalidValue  ErrorCode = "rule_invalid_value"  // a field's value is outside its domain
	CodeDuplicateRule ErrorCode = "rule_duplicate"      // two rules share an id
	CodeCompile       ErrorCode = "rule_compile"        // a CEL expression does not parse or type-check
	CodeNotBool       ErrorCode = "rule_not_bool"       // a CEL expression is not of type bool
	CodeNotTimestamp  ErrorCode = "rule_not_timestamp"  // a deadline expression is not of type timestamp
	CodeCorrelation   ErrorCode = "rule_correlation"    // not exactly one correlation, or one of the wrong shape
	CodeEmpty         ErrorCode = "rule_empty_set"      // a directory holds no rule file
	CodeUnknownField  ErrorCode = "rule_unknown_field"  // a group_by or value field that is not a scalar event field
	CodeFixture       ErrorCode = "rule_fixture"        // a fixture file cannot be read or decoded
	CodeFixtureUnused ErrorCode = "rule_fixture_target" // a fixture names a rule the set does not have
)

// Sentinels for errors.Is: an *Error matches the sentinel of its code.
var (
	ErrRead          = &Error{Code: CodeRead}
	ErrSyntax        = &Error{Code: CodeSyntax}
	ErrUnknownKey    = &Error{Code: CodeUnknownKey}
	ErrMissing       = &Error{Code: CodeMissing}
	ErrInvalidValue  = &Error{Code: CodeInvalidValue}
	ErrDuplicateRule = &Error{Code: CodeDuplicateRule}
	ErrCompile       = &Error{Code: CodeCompile}
	ErrNotBool       = &Error{Code: CodeNotBool}
	ErrNotTimestamp  = &Error{Code: CodeNotTimestamp}
	ErrCorrelation   = &Error{Code: CodeCorrelation}
	ErrEmpty         = &Error{Code: CodeEmpty}
	ErrUnknownField  = &Error{Code: CodeUnknownField}
	ErrFixture       = &Error{Code: CodeFixture}
)

// Error is a rule load error: what is wrong (Code, Msg) and where (File,
// Line, Rule), so an operator can go to it.
type Error struct {
	Code ErrorCode
	File string
	Line int    // 1-based; 0 when unknown
	Rule string // the rule's id, when the error is inside a rule
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("detect: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
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

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}
