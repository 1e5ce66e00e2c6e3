package identity

import "errors"

// Code is a stable reason a caller could not be identified. Codes appear in
// audit events and API error bodies; they never change meaning.
type Code string

// Codes returned by Verify.
const (
	TokenMissing Code = "token_missing" // no bearer token on the request
	TokenInvalid Code = "token_invalid" // malformed, bad signature, unknown key or disallowed algorithm
	TokenExpired Code = "token_expired" // exp is in the past (beyond the allowed skew)
	TokenClaims  Code = "token_claims"  // wrong iss or aud, or a required claim missing or mistyped
	ChainTooDeep Code = "chain_too_deep"
)

// Error is a verification failure with its stable code.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return "identity: " + string(e.Code) + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error with the same code, so callers can test
// errors.Is(err, &identity.Error{Code: identity.TokenExpired}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of err, or TokenInvalid for foreign errors.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return TokenInvalid
}
