package identity

import "errors"

// Code is a stable reason a caller could not be identified. Codes appear in
// audit events and API error bodies; they never change meaning.
type Code string

// Codes returned by Verify, VerifyToken and SPIFFEFromCert.
const (
	TokenMissing         Code = "token_missing"          // no bearer token on the request
	TokenInvalid         Code = "token_invalid"          // a failure without a more precise code
	TokenTooLarge        Code = "token_too_large"        // longer than max_token_bytes
	TokenMalformed       Code = "token_malformed"        // not three base64url parts of JSON objects; JWE or nested JWT; duplicate JSON keys
	TokenHeader          Code = "token_header"           // forbidden header parameter (jku, x5u, x5c, jwk, crit, ...), bad kid or typ
	TokenAlgorithm       Code = "token_algorithm"        // alg not allowed for the issuer (none, HS*), or not the key's algorithm
	TokenUnknownKey      Code = "token_unknown_kid"      // kid not in the issuer's JWKS, even after a refetch
	TokenSignature       Code = "token_signature"        // the signature does not verify
	TokenIssuer          Code = "token_issuer"           // iss missing or not a configured issuer
	TokenAudience        Code = "token_audience"         // aud does not name this audience
	TokenExpired         Code = "token_expired"          // exp is in the past (beyond the allowed skew)
	TokenNotYetValid     Code = "token_not_yet_valid"    // nbf or iat in the future (beyond the allowed skew)
	TokenClaims          Code = "token_claims"           // a required claim missing or mistyped, an invalid SPIFFE ID, a malformed act or may_act
	TokenTenantForeign   Code = "token_tenant_foreign"   // the tenant claim names another tenant than the one the issuer is bound to
	ChainTooDeep         Code = "chain_too_deep"         // more nested act claims than max_chain_depth
	DelegationNotAllowed Code = "delegation_not_allowed" // the current actor is not in the principal's may_act
	CertSPIFFEID         Code = "cert_spiffe_id"         // a client certificate without exactly one valid SPIFFE ID
)

// Codes lists every code this package returns, so callers can map each to
// a response (all are authentication failures) without falling behind.
func Codes() []Code {
	return []Code{
		TokenMissing, TokenInvalid, TokenTooLarge, TokenMalformed, TokenHeader,
		TokenAlgorithm, TokenUnknownKey, TokenSignature, TokenIssuer, TokenAudience,
		TokenExpired, TokenNotYetValid, TokenClaims, TokenTenantForeign, ChainTooDeep, DelegationNotAllowed,
		CertSPIFFEID,
	}
}

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

func fail(c Code, err error) *Error { return &Error{Code: c, Err: err} }
