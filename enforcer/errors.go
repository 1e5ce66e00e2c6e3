package enforcer

import (
	"encoding/json"
	"net/http"

	"github.com/rampart-io/rampart/enforcer/framing"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// Code is a stable API error code: clients and audit queries match on it,
// so a code never changes meaning once released.
type Code string

// Error codes returned to clients and recorded in decision events.
const (
	CodeTokenMissing = Code(identity.TokenMissing)
	CodeTokenInvalid = Code(identity.TokenInvalid)
	CodeTokenExpired = Code(identity.TokenExpired)
	CodeTokenClaims  = Code(identity.TokenClaims)
	// CodeTokenTenantForeign refuses a token whose tenant claim names
	// another tenant than the one its issuer is bound to.
	CodeTokenTenantForeign  = Code(identity.TokenTenantForeign)
	CodeChainTooDeep        = Code(identity.ChainTooDeep)
	CodeBodyTooLarge        = Code("body_too_large")
	CodeBodyUnreadable      = Code("body_unreadable")
	CodeRPCParseError       = Code("rpc_parse_error")
	CodeRPCInvalidRequest   = Code("rpc_invalid_request")
	CodeRPCInvalidParams    = Code("rpc_invalid_params")
	CodePolicyDenied        = Code("policy_denied")
	CodeAuditUnavailable    = Code("audit_unavailable")
	CodeUpstreamUnavailable = Code("upstream_unavailable")
	// CodePathInvalid refuses a path that is not in canonical form ("..",
	// "//", encoded "/" or "."), which a backend could read differently
	// from the policy.
	CodePathInvalid = Code("path_invalid")
	// CodeProxyUntrusted refuses a forward-auth or ext_authz check from an
	// address outside trusted_proxies.
	CodeProxyUntrusted = Code("proxy_untrusted")
	// CodeForwardedMissing refuses a forward-auth check without the
	// original method, URI or host.
	CodeForwardedMissing = Code("forwarded_headers_missing")
	// CodeGatewayUnauthenticated refuses a forward-auth subrequest without
	// the gateway secret.
	CodeGatewayUnauthenticated = Code("gateway_unauthenticated")
	// CodeForwardedConflict refuses a forward-auth subrequest whose
	// original-request headers are repeated or spelled other than the
	// gateway writes them: the client wrote them.
	CodeForwardedConflict = Code("forwarded_headers_conflict")
	// CodeHeaderForbidden refuses a request carrying a header only the
	// enforcer or the gateway may write (X-Rampart-*) where it cannot be
	// stripped.
	CodeHeaderForbidden = Code("header_forbidden")
	// CodeClientIDInvalid refuses a session or task id header that is
	// repeated, empty, longer than 128 bytes or not visible ASCII.
	CodeClientIDInvalid = Code("client_id_invalid")
	// CodeSessionForeign and CodeTaskForeign refuse a session or task id
	// that another principal holds.
	CodeSessionForeign = Code("session_foreign")
	CodeTaskForeign    = Code("task_foreign")
	// CodeResponseUnsolicited refuses a client's JSON-RPC response that
	// answers no request the backend sent that caller in that session
	// through this enforcer (or answers one twice).
	CodeResponseUnsolicited = Code("rpc_response_unsolicited")
	// CodeSessionHeld answers a call whose backend issued a session id
	// another principal holds at the enforcer: the call ran, its answer
	// is withheld.
	CodeSessionHeld = Code("session_held")
	// CodeClientCertInvalid refuses a client certificate with more than
	// one spiffe:// URI SAN or a malformed one.
	CodeClientCertInvalid = Code("client_cert_invalid")
	// CodeSPIFFEMismatch refuses a JWT-SVID whose subject is not the
	// SPIFFE ID of the client certificate it came with.
	CodeSPIFFEMismatch = Code("spiffe_mismatch")
	// CodeRequestMalformed is answered, at the connection level, to HTTP/1
	// requests with ambiguous framing (Content-Length with
	// Transfer-Encoding, repeated Content-Length, folded headers, bare LF):
	// the shapes of request smuggling. The connection is closed.
	CodeRequestMalformed = Code(framing.Malformed)
	// CodeHeadersTooLarge is answered, at the connection level, to HTTP/1
	// requests whose header block is over max_header_bytes (or whose
	// trailers are over their bound): the framing check cannot follow
	// them, so it refuses them. The connection is closed.
	CodeHeadersTooLarge = Code(framing.HeadersTooLarge)
	// CodeNotFound answers paths that no enabled mode serves.
	CodeNotFound = Code("not_found")
	// CodeBudgetExceeded refuses a call beyond the session's or task's call
	// budget that the allowing rule set.
	CodeBudgetExceeded = Code("budget_exceeded")
	// CodeBudgetTableFull refuses a call whose budget cannot be counted:
	// its session or task needs a new counter, and the tenant's share of
	// the budget table (budgets.max_per_tenant) or the table
	// (budgets.max_total) is full. 503, not 429: nothing is spent, and room
	// comes back as budget windows end.
	CodeBudgetTableFull = Code("budget_table_full")
	// CodeCredentialUnavailable refuses an allowed call whose destination
	// asks for a task credential that cannot be minted (no principal, the
	// task's deadline passed, signing failed): the caller's own
	// credentials are never forwarded in its place.
	CodeCredentialUnavailable = Code("credential_unavailable")
	// CodeTaskInvalid refuses a task declaration or completion that cannot
	// be read: not one JSON object, unknown or repeated keys, out of
	// bounds, or a task id that is not 1-128 visible ASCII.
	CodeTaskInvalid = Code("task_invalid")
	// CodeTaskExists refuses declaring a task id the tenant already has
	// (declared, started by a call, or ended).
	CodeTaskExists = Code("task_exists")
	// CodeTaskUnknown refuses completing a task the tenant does not have.
	CodeTaskUnknown = Code("task_unknown")
	// CodeTaskEnded refuses a call under a task that ended (completed, at
	// its deadline or idle), and a second completion of it.
	CodeTaskEnded = Code("task_ended")
	// CodeTaskBudgetExceeded refuses a call beyond its declared task's
	// call budget, counted across every enforcer instance.
	CodeTaskBudgetExceeded = Code("task_budget_exceeded")
	// CodeTaskMismatch refuses a call whose token names one task and whose
	// task header another: which task would the backend act in?
	CodeTaskMismatch = Code("task_mismatch")
	// CodeTaskScopeViolation is a deny of a rule reading
	// within_task_scope() for a call outside its task's declared scope.
	CodeTaskScopeViolation = Code("task_scope_violation")
	// CodeTaskTableFull refuses a call that would start a new task, or a
	// declaration, of a tenant with tasks.max_per_tenant live tasks.
	CodeTaskTableFull = Code("task_table_full")
	// CodeTaskUnavailable refuses a call under a task whose shared state
	// cannot be read or written (JetStream unreachable): its budget and
	// end cannot be known.
	CodeTaskUnavailable = Code("task_unavailable")
	// CodeRevocationsStale refuses a call needing a credential while this
	// instance's view of the revocations is staler than
	// revocations.max_staleness (with on_stale: refuse, the default):
	// nothing is minted or reused that may have been revoked meanwhile.
	CodeRevocationsStale = Code("revocations_stale")
	// CodeTokenRevoked refuses a bearer token whose jti is revoked in
	// RAMPART_REVOCATIONS: a credential of an ended task presented back.
	CodeTokenRevoked = Code("token_revoked")
	// CodeOverloaded refuses a request beyond max_inflight.
	CodeOverloaded = Code("overloaded")
	// CodeMethodInvalid refuses a request method that is not an upper-case
	// token ("post", "Post"): methods are case-sensitive, and a backend
	// that folds case would run as a POST what policy saw as another
	// method.
	CodeMethodInvalid = Code("method_invalid")
	// CodeMCPMethodNotAllowed refuses, on an MCP endpoint (mcp.paths), a
	// method other than POST, GET and DELETE; the answer is 405 with Allow.
	CodeMCPMethodNotAllowed = Code("mcp_method_not_allowed")
	// CodeMCPRequestInvalid refuses, on an MCP endpoint, a GET or DELETE
	// with a body: the transport gives them none, and a backend that reads
	// one anyway would run a message sent outside a POST.
	CodeMCPRequestInvalid = Code("mcp_request_invalid")
	// CodeBodyEncodingUnsupported refuses a body with a Content-Encoding
	// other than identity (gzip, deflate, br, ...), which the enforcer
	// does not decode and so cannot read as the backend would.
	CodeBodyEncodingUnsupported = Code("body_encoding_unsupported")
	// CodeBodyCharsetUnsupported refuses a Content-Type whose charset is
	// not utf-8, or that is malformed or repeated.
	CodeBodyCharsetUnsupported = Code("body_charset_unsupported")
	// The credential broker's endpoints (/_rampart/token, introspect,
	// revoke): each answers as RFC 6749 §5.2 with the OAuth error of
	// oauthErrors beside the code.
	//
	// CodeOAuthMethodNotAllowed refuses a method other than POST.
	CodeOAuthMethodNotAllowed = Code("oauth_method_not_allowed")
	// CodeOAuthContentType refuses a body that is not
	// application/x-www-form-urlencoded in UTF-8 (JSON included), or a
	// Content-Type that is repeated or malformed.
	CodeOAuthContentType = Code("oauth_content_type")
	// CodeOAuthRequestInvalid refuses a form that does not parse, or
	// lacks a required parameter or carries one that must be absent.
	CodeOAuthRequestInvalid = Code("oauth_request_invalid")
	// CodeOAuthParamRepeated refuses a form with a parameter more than
	// once (RFC 6749 §3.2): which one a client meant is a guess.
	CodeOAuthParamRepeated = Code("oauth_param_repeated")
	// CodeGrantTypeUnsupported refuses a grant_type other than token
	// exchange.
	CodeGrantTypeUnsupported = Code("grant_type_unsupported")
	// CodeTokenTypeUnsupported refuses a subject, actor or requested
	// token type other than access_token and jwt.
	CodeTokenTypeUnsupported = Code("token_type_unsupported")
	// CodeSubjectTokenInvalid and CodeActorTokenInvalid refuse a subject
	// or actor token the identity issuers do not verify (expired, HS256,
	// alg none, unknown issuer ...; the record says which), or an actor
	// its subject's may_act does not name, or a chain grown too deep.
	CodeSubjectTokenInvalid = Code("subject_token_invalid")
	CodeActorTokenInvalid   = Code("actor_token_invalid")
	// CodeTokenChained refuses a subject or actor token that is itself a
	// Rampart credential: a backend given one could otherwise mint itself
	// tokens for other audiences.
	CodeTokenChained = Code("token_chained")
	// CodeTenantMismatch refuses an exchange whose caller, subject token
	// and actor token are not all of one tenant.
	CodeTenantMismatch = Code("tenant_mismatch")
	// CodeTargetNotGranted refuses an exchange for an audience that the
	// allowing rule's credential obligation does not name (or an allowing
	// rule without one).
	CodeTargetNotGranted = Code("target_not_granted")
	// CodeScopeExceeded refuses an exchange asking a scope beyond the
	// allowing rule's credential obligation.
	CodeScopeExceeded = Code("scope_exceeded")
	// CodeRevocationUnavailable answers an introspection or revocation
	// when the revocations bucket cannot be read or written: never an
	// "active" that might be revoked, never a 200 for an unwritten
	// revocation.
	CodeRevocationUnavailable = Code("revocation_unavailable")
	// Tool argument validation, before policy (package toolschema).
	CodeArgsInvalid   = Code(toolschema.ArgsInvalid)
	CodeToolUnknown   = Code(toolschema.ToolUnknown)
	CodeSchemaChanged = Code(toolschema.SchemaChanged)
	CodeSchemaInvalid = Code(toolschema.SchemaInvalid)
)

// identityMessages are the client texts of the identity package's codes
// that this file does not name; every one is a failure to identify.
var identityMessages = map[identity.Code]string{
	identity.TokenTooLarge:        "the bearer token is too large",
	identity.TokenMalformed:       "the bearer token is malformed",
	identity.TokenHeader:          "the bearer token's header is not accepted",
	identity.TokenAlgorithm:       "the bearer token's algorithm is not accepted",
	identity.TokenUnknownKey:      "the bearer token's key is unknown",
	identity.TokenSignature:       "the bearer token's signature does not verify",
	identity.TokenIssuer:          "the bearer token's issuer is not accepted",
	identity.TokenAudience:        "the bearer token's audience is not accepted",
	identity.TokenNotYetValid:     "the bearer token is not yet valid",
	identity.TokenTenantForeign:   "the bearer token's tenant is not its issuer's",
	identity.DelegationNotAllowed: "the acting agent is not allowed to act for the principal",
}

func init() {
	// Every identity code answers 401 with a stable message.
	for _, c := range identity.Codes() {
		if _, ok := errorTable[Code(c)]; ok {
			continue
		}
		msg, ok := identityMessages[c]
		if !ok {
			msg = "the caller could not be identified"
		}
		errorTable[Code(c)] = struct {
			status  int
			message string
		}{http.StatusUnauthorized, msg}
	}
}

// errorTable is the HTTP status and client-facing message of every code.
// Details stay in the audit event; clients get these fixed texts.
var errorTable = map[Code]struct {
	status  int
	message string
}{
	CodeTokenMissing:           {http.StatusUnauthorized, "a bearer token is required"},
	CodeTokenInvalid:           {http.StatusUnauthorized, "the bearer token is invalid"},
	CodeTokenExpired:           {http.StatusUnauthorized, "the bearer token has expired"},
	CodeTokenClaims:            {http.StatusUnauthorized, "the bearer token's claims are not accepted"},
	CodeChainTooDeep:           {http.StatusUnauthorized, "the delegation chain is too deep"},
	CodeBodyTooLarge:           {http.StatusRequestEntityTooLarge, "the request body is too large"},
	CodeBodyUnreadable:         {http.StatusBadRequest, "the request body could not be read"},
	CodeRPCParseError:          {http.StatusBadRequest, "parse error"},
	CodeRPCInvalidRequest:      {http.StatusBadRequest, "invalid request"},
	CodeRPCInvalidParams:       {http.StatusBadRequest, "invalid params"},
	CodePolicyDenied:           {http.StatusForbidden, "denied by policy"},
	CodeAuditUnavailable:       {http.StatusServiceUnavailable, "the audit log is unavailable; the request was not forwarded"},
	CodeUpstreamUnavailable:    {http.StatusBadGateway, "the upstream could not be reached"},
	CodePathInvalid:            {http.StatusBadRequest, "the request path is not canonical"},
	CodeProxyUntrusted:         {http.StatusForbidden, "checks are accepted from trusted proxies only"},
	CodeForwardedMissing:       {http.StatusBadRequest, "the original method, URI and host headers are required"},
	CodeGatewayUnauthenticated: {http.StatusForbidden, "checks are accepted from the configured gateway only"},
	CodeForwardedConflict:      {http.StatusBadRequest, "the original-request headers are ambiguous"},
	CodeHeaderForbidden:        {http.StatusBadRequest, "the request carries a header reserved for the enforcer"},
	CodeClientIDInvalid:        {http.StatusBadRequest, "the session or task id header is malformed"},
	CodeSessionForeign:         {http.StatusForbidden, "the session belongs to another principal"},
	CodeTaskForeign:            {http.StatusForbidden, "the task belongs to another principal"},
	CodeResponseUnsolicited:    {http.StatusForbidden, "the response answers no request the server sent"},
	CodeSessionHeld:            {http.StatusBadGateway, "the backend issued a session id another principal holds; its answer is withheld"},
	CodeClientCertInvalid:      {http.StatusUnauthorized, "the client certificate's SPIFFE ID is invalid"},
	CodeSPIFFEMismatch:         {http.StatusUnauthorized, "the token's SPIFFE ID is not the client certificate's"},
	CodeRequestMalformed:       {framing.Malformed.Status(), "the request's framing is ambiguous"},
	CodeHeadersTooLarge:        {framing.HeadersTooLarge.Status(), "the request's header fields are too large"},
	CodeNotFound:               {http.StatusNotFound, "not found"},
	CodeBudgetExceeded:         {http.StatusTooManyRequests, "the call budget of this session or task is spent"},
	CodeBudgetTableFull:        {http.StatusServiceUnavailable, "the budget table is full; a new session or task cannot be counted yet"},
	CodeOverloaded:             {http.StatusServiceUnavailable, "too many requests in flight; retry"},
	CodeCredentialUnavailable:  {http.StatusServiceUnavailable, "no credential could be minted for the destination"},
	CodeTokenRevoked:           {http.StatusUnauthorized, "the bearer token is revoked"},
	CodeTaskInvalid:            {http.StatusBadRequest, "the task declaration or id is not accepted"},
	CodeTaskExists:             {http.StatusConflict, "a task of that id exists"},
	CodeTaskUnknown:            {http.StatusNotFound, "no such task"},
	CodeTaskEnded:              {http.StatusForbidden, "the task has ended"},
	CodeTaskBudgetExceeded:     {http.StatusTooManyRequests, "the task's call budget is spent"},
	CodeTaskMismatch:           {http.StatusBadRequest, "the token and the task header name different tasks"},
	CodeTaskScopeViolation:     {http.StatusForbidden, "the call is outside its task's declared scope"},
	CodeTaskTableFull:          {http.StatusServiceUnavailable, "the tenant has too many live tasks; a new one cannot start yet"},
	CodeTaskUnavailable:        {http.StatusServiceUnavailable, "the task's state is unavailable; the request was not forwarded"},
	CodeRevocationsStale:       {http.StatusServiceUnavailable, "revocations cannot be confirmed current; no credential is handed out"},
	CodeArgsInvalid:            {http.StatusBadRequest, "the tool's arguments do not match its schema"},
	CodeToolUnknown:            {http.StatusForbidden, "the tool has no schema and unknown tools are refused"},
	CodeSchemaChanged:          {http.StatusForbidden, "the tool's schema changed and awaits an operator"},
	CodeSchemaInvalid:          {http.StatusForbidden, "the tool's schema cannot be checked"},

	CodeMethodInvalid:           {http.StatusBadRequest, "the request method is not an upper-case token"},
	CodeMCPMethodNotAllowed:     {http.StatusMethodNotAllowed, "MCP endpoints accept POST, GET and DELETE only"},
	CodeMCPRequestInvalid:       {http.StatusBadRequest, "GET and DELETE to an MCP endpoint carry no body"},
	CodeBodyEncodingUnsupported: {http.StatusUnsupportedMediaType, "request bodies are accepted without a content coding only"},
	CodeBodyCharsetUnsupported:  {http.StatusUnsupportedMediaType, "request bodies are accepted in UTF-8 only"},

	CodeOAuthMethodNotAllowed: {http.StatusMethodNotAllowed, "this endpoint accepts POST only"},
	CodeOAuthContentType:      {http.StatusUnsupportedMediaType, "the body must be application/x-www-form-urlencoded (UTF-8)"},
	CodeOAuthRequestInvalid:   {http.StatusBadRequest, "the request's parameters are invalid"},
	CodeOAuthParamRepeated:    {http.StatusBadRequest, "a parameter is repeated"},
	CodeGrantTypeUnsupported:  {http.StatusBadRequest, "grant_type must be urn:ietf:params:oauth:grant-type:token-exchange"},
	CodeTokenTypeUnsupported:  {http.StatusBadRequest, "token types accepted: urn:ietf:params:oauth:token-type:access_token and :jwt"},
	CodeSubjectTokenInvalid:   {http.StatusBadRequest, "the subject_token is not accepted"},
	CodeActorTokenInvalid:     {http.StatusBadRequest, "the actor_token is not accepted"},
	CodeTokenChained:          {http.StatusBadRequest, "a Rampart credential cannot be exchanged"},
	CodeTenantMismatch:        {http.StatusBadRequest, "the caller, subject and actor are not of one tenant"},
	CodeTargetNotGranted:      {http.StatusBadRequest, "no credential for this audience is granted"},
	CodeScopeExceeded:         {http.StatusBadRequest, "the scope asked exceeds what is granted"},
	CodeRevocationUnavailable: {http.StatusServiceUnavailable, "revocations cannot be read or written; retry"},
}

// setHeader adds to h the headers that an answer with c's status needs:
// Allow, for 405.
func (c Code) setHeader(h http.Header) {
	switch c {
	case CodeMCPMethodNotAllowed:
		h.Set("Allow", mcp.EndpointMethods)
	case CodeOAuthMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	}
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
	writeReply(w, code.Status(), errorBody(code, requestID, message, fill))
}

// errorBody is the JSON body of an error answer.
func errorBody(code Code, requestID, message string, fill func(*apiError)) []byte {
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
	b, err := json.Marshal(body)
	if err != nil { // only our own types reach here
		return []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	return b
}

// writeReply answers with a JSON body.
func writeReply(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
