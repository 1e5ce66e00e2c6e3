package enforcer

import (
	"encoding/json"
	"net/http"

	"github.com/rampart-io/rampart/enforcer/identity"
)

// Code is a stable API error code: clients and audit queries match on it,
// so a code never changes meaning once released.
type Code string

// Error codes returned to clients and recorded in decision events.
const (
	CodeTokenMissing        = Code(identity.TokenMissing)
	CodeTokenInvalid        = Code(identity.TokenInvalid)
	CodeTokenExpired        = Code(identity.TokenExpired)
	CodeTokenClaims         = Code(identity.TokenClaims)
	CodeChainTooDeep        = Code(identity.ChainTooDeep)
	CodeBodyTooLarge        = Code("body_too_large")
	CodeBodyUnreadable      = Code("body_unreadable")
	CodeRPCParseError       = Code("rpc_parse_error")
	CodeRPCInvalidRequest   = Code("rpc_invalid_request")
	CodeRPCInvalidParams    = Code("rpc_invalid_params")
	CodePolicyDenied        = Code("policy_denied")
	CodeAuditUnavailable    = Code("audit_unavailable")
	CodeUpstreamUnavailable = Code("upstream_unavailable")
)

// errorTable is the HTTP status and client-facing message of every code.
// Details stay in the audit event; clients get these fixed texts.
var errorTable = map[Code]struct {
	status  int
	message string
}{
	CodeTokenMissing:        {http.StatusUnauthorized, "a bearer token is required"},
	CodeTokenInvalid:        {http.StatusUnauthorized, "the bearer token is invalid"},
	CodeTokenExpired:        {http.StatusUnauthorized, "the bearer token has expired"},
	CodeTokenClaims:         {http.StatusUnauthorized, "the bearer token's claims are not accepted"},
	CodeChainTooDeep:        {http.StatusUnauthorized, "the delegation chain is too deep"},
	CodeBodyTooLarge:        {http.StatusRequestEntityTooLarge, "the request body is too large"},
	CodeBodyUnreadable:      {http.StatusBadRequest, "the request body could not be read"},
	CodeRPCParseError:       {http.StatusBadRequest, "parse error"},
	CodeRPCInvalidRequest:   {http.StatusBadRequest, "invalid request"},
	CodeRPCInvalidParams:    {http.StatusBadRequest, "invalid params"},
	CodePolicyDenied:        {http.StatusForbidden, "denied by policy"},
	CodeAuditUnavailable:    {http.StatusServiceUnavailable, "the audit log is unavailable; the request was not forwarded"},
	CodeUpstreamUnavailable: {http.StatusBadGateway, "the upstream could not be reached"},
}

// Status returns the HTTP status of c.
func (c Code) Status() int {
	if e, ok := errorTable[c]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// apiError is the body of every error the enforcer itself answers with.
type apiError struct {
	Error struct {
		Code     Code   `json:"code"`
		Message  string `json:"message"`
		RuleID   string `json:"rule_id,omitempty"`
		PolicyID string `json:"policy_id,omitempty"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// writeError answers with code's status and JSON body; message replaces
// the table's message when not empty.
func writeError(w http.ResponseWriter, code Code, requestID, message string, fill func(*apiError)) {
	var body apiError
	body.Error.Code = code
	body.Error.Message = errorTable[code].message
	if message != "" {
		body.Error.Message = message
	}
	body.RequestID = requestID
	if fill != nil {
		fill(&body)
	}
	writeJSON(w, code.Status(), body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil { // only our own types reach here
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
