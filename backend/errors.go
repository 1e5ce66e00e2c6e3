package backend

import (
	"encoding/json"
	"net/http"
)

// Codes of the middleware's refusals, stable: they are the "code" of the
// JSON body and of the backend_request event that records the refusal.
const (
	// CodeMissingCredential: no bearer token in Authorization (a token in
	// the query string or a cookie is not looked at).
	CodeMissingCredential = "missing_credential"
	// CodeAmbiguousCredential: more than one Authorization header.
	CodeAmbiguousCredential = "ambiguous_credential"
	// CodeInvalidCredential: not a Rampart credential whose signature
	// verifies with a key of the fleet's JWKS (another issuer's token, a
	// wrong alg or typ, an unknown key id, a malformed or forged token).
	CodeInvalidCredential = "invalid_credential"
	// CodeWrongAudience: a Rampart credential minted for another backend.
	CodeWrongAudience = "wrong_audience"
	// CodeWrongTenant: a credential of another tenant than the one this
	// backend serves (Config.Tenant).
	CodeWrongTenant = "wrong_tenant"
	// CodeCredentialExpired: exp has passed, beyond the leeway.
	CodeCredentialExpired = "credential_expired"
	// CodeCredentialNotYetValid: nbf is still ahead, beyond the leeway.
	CodeCredentialNotYetValid = "credential_not_yet_valid"
	// CodeCredentialRevoked: the credential's jti is revoked, or
	// introspection says it is not active.
	CodeCredentialRevoked = "credential_revoked"
	// CodeTaskEnded: the credential's task ended (completed, deadline,
	// idle or revoked), and with it every credential minted for it.
	CodeTaskEnded = "task_ended"

	// The backend could not check: it refuses rather than guess (503).

	// CodeKeysUnavailable: the JWKS could not be fetched and no key for
	// the token's kid is known.
	CodeKeysUnavailable = "keys_unavailable"
	// CodeRevocationUnavailable: neither the revocations bucket nor
	// introspection could be consulted.
	CodeRevocationUnavailable = "revocation_unavailable"
	// CodeReportingUnavailable: Report.FailClosed is set and the request
	// could not be put on the record.
	CodeReportingUnavailable = "reporting_unavailable"
)

// refusal is the JSON body of a refused request.
type refusal struct {
	Error   string `json:"error"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusOf is the HTTP status a code is answered with: 503 when the
// backend could not check, 401 when the credential failed.
func statusOf(code string) int {
	switch code {
	case CodeKeysUnavailable, CodeRevocationUnavailable, CodeReportingUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// messages are the refusals' human-readable texts, one per code.
var messages = map[string]string{
	CodeMissingCredential:     "a Rampart credential is required (Authorization: Bearer)",
	CodeAmbiguousCredential:   "more than one Authorization header",
	CodeInvalidCredential:     "the credential is not a valid Rampart credential",
	CodeWrongAudience:         "the credential was minted for another audience",
	CodeWrongTenant:           "the credential belongs to another tenant",
	CodeCredentialExpired:     "the credential has expired",
	CodeCredentialNotYetValid: "the credential is not valid yet",
	CodeCredentialRevoked:     "the credential was revoked",
	CodeTaskEnded:             "the credential's task has ended",
	CodeKeysUnavailable:       "the issuer's keys could not be fetched",
	CodeRevocationUnavailable: "revocation status could not be checked",
	CodeReportingUnavailable:  "the request could not be recorded",
}

// writeRefusal answers a refused request with its status and JSON body.
func writeRefusal(w http.ResponseWriter, code string) int {
	status := statusOf(code)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		// RFC 6750 §3: the scheme and what went wrong.
		h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+code+`"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(refusal{Error: http.StatusText(status), Code: code, Message: messages[code]})
	return status
}
