package toolschema

import (
	"errors"
	"fmt"
)

// Code is a stable error code: decision events and clients match on it, so
// a code never changes meaning once released.
type Code string

// Error codes of Validate.
const (
	// ArgsInvalid: the arguments do not satisfy the tool's pinned schema,
	// or are not JSON. Error.Pointer locates the first violation.
	ArgsInvalid Code = "args_invalid"
	// ToolUnknown: the tool has no schema and unknown tools are denied.
	ToolUnknown Code = "tool_unknown"
	// SchemaChanged: the backend now lists another schema for the tool
	// than the pinned one, and on_change is "deny".
	SchemaChanged Code = "schema_changed"
	// SchemaInvalid: the tool's schema could not be compiled (for example
	// a pattern RE2 cannot run, or a $ref to another document), so no
	// call to it can be checked.
	SchemaInvalid Code = "schema_invalid"
)

// Error is a call refused by the registry.
type Error struct {
	Code Code
	Tool string
	// Pointer is the RFC 6901 JSON pointer, within the arguments, of the
	// first violation ("" for the arguments as a whole); ArgsInvalid only.
	Pointer string
	// Keyword is the schema keyword that failed, e.g. "required" or
	// "maxLength"; ArgsInvalid only.
	Keyword string
	// Detail is the validator's own account of the violation. It may quote
	// argument values, so record it only where arguments may be recorded;
	// Error() leaves it out.
	Detail string
}

// Error names the code, tool and location, never an argument's value, so
// that it is safe for decision reasons and logs.
func (e *Error) Error() string {
	msg := fmt.Sprintf("toolschema: %s: tool %q", e.Code, e.Tool)
	if e.Code == ArgsInvalid {
		msg += fmt.Sprintf(": at %q", e.Pointer)
		if e.Keyword != "" {
			msg += ": violates " + e.Keyword
		}
	}
	return msg
}

// Is matches any *Error with the same code, so callers can test
// errors.Is(err, &toolschema.Error{Code: toolschema.ArgsInvalid}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of err, or "" when err is not an *Error.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}
