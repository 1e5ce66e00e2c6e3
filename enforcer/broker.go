package enforcer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

// The credential broker's endpoints, for orchestrators that want a task
// credential themselves and for backends that check one: RFC 8693 token
// exchange, RFC 7662 introspection, RFC 7009 revocation. They are served
// beside the JWKS wherever credentials are configured (proxy mode only)
// and never forwarded upstream.
const (
	TokenPath      = "/_rampart/token"
	IntrospectPath = "/_rampart/introspect"
	RevokePath     = "/_rampart/revoke"
)

// The destinations policy sees for the broker's endpoints. A rule names
// the endpoint by destination, which only the enforcer sets, never by
// tool: tool names are the caller's to choose.
const (
	DestinationToken      = "rampart.token"
	DestinationIntrospect = "rampart.introspect"
	DestinationRevoke     = "rampart.revoke"
)

var brokerDestinations = map[string]string{
	TokenPath: DestinationToken, IntrospectPath: DestinationIntrospect, RevokePath: DestinationRevoke,
}

// maxFormBytes bounds a broker request's body: two tokens of the identity
// stack's 8 KiB and a few parameters fit with room to spare.
const maxFormBytes = 64 << 10

// Token type URNs (RFC 8693 §3).
const (
	tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT    = "urn:ietf:params:oauth:token-type:jwt"
)

// oauthErrors is the RFC 6749 §5.2 (and RFC 8693 §2.2.2) error of each
// code the broker answers with; a code not listed is invalid_client when
// it answers 401 (the caller is not authenticated), temporarily_unavailable
// when 503, and invalid_request otherwise.
var oauthErrors = map[Code]string{
	CodeGrantTypeUnsupported: "unsupported_grant_type",
	CodeTargetNotGranted:     "invalid_target",
	CodeScopeExceeded:        "invalid_scope",
	CodePolicyDenied:         "unauthorized_client",
	CodeBudgetExceeded:       "unauthorized_client",
}

func oauthError(c Code) string {
	if s, ok := oauthErrors[c]; ok {
		return s
	}
	switch c.Status() {
	case http.StatusUnauthorized:
		return "invalid_client"
	case http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case http.StatusInternalServerError:
		return "server_error"
	}
	return "invalid_request"
}

// brokerCall is one call of a broker endpoint while it is handled: the
// caller identified, the form read.
type brokerCall struct {
	w    http.ResponseWriter
	x    *exchange
	form url.Values
}

// serveBroker identifies the caller of a broker endpoint, reads its form
// and hands it to the endpoint. Every refusal is recorded, as a call's.
func (e *Enforcer) serveBroker(w http.ResponseWriter, r *http.Request) {
	if e.minter == nil {
		// Never forwarded: a subject token sent here is no backend's.
		writeError(w, CodeNotFound, "", "", nil)
		return
	}
	// One span per call, as a decision's, with the identity, policy and
	// record spans under it.
	ctx, span := e.startDecision(r.Context(), r.Header)
	defer endSpan(span)
	c := &check{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header}
	c.peerSPIFFE, c.certErr = peerSPIFFEID(r.TLS)
	x := e.newExchange(c)
	x.request.Destination = brokerDestinations[c.path]
	w.Header().Set(HeaderRequestID, x.id)
	// RFC 6749 §5.1: token answers are never cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	b := &brokerCall{w: w, x: x}
	if code, err := e.admit(ctx, c, x); err != nil {
		e.refuseBroker(ctx, b, code, err, "")
		return
	}
	var code Code
	var err error
	if b.form, code, err = readForm(r); err != nil {
		e.refuseBroker(ctx, b, code, err, err.Error())
		return
	}
	switch c.path {
	case TokenPath:
		e.exchangeToken(ctx, b)
	case IntrospectPath:
		e.introspect(ctx, b)
	case RevokePath:
		e.revoke(ctx, b)
	}
}

// readForm reads a broker request's parameters: a POST of
// application/x-www-form-urlencoded in UTF-8 (RFC 6749 §3.2, RFC 7662
// §2.1, RFC 7009 §2.1), each parameter once, none in the query string
// (where logs would keep a token).
func readForm(r *http.Request) (url.Values, Code, error) {
	if r.Method != http.MethodPost {
		return nil, CodeOAuthMethodNotAllowed, fmt.Errorf("method %s: POST only", r.Method)
	}
	if r.URL.RawQuery != "" {
		return nil, CodeOAuthRequestInvalid, errors.New("parameters belong in the body, not the query string")
	}
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && (len(ce) > 1 || !strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return nil, CodeBodyEncodingUnsupported, fmt.Errorf("Content-Encoding %q", ce)
	}
	ct := r.Header.Values("Content-Type")
	if len(ct) != 1 {
		return nil, CodeOAuthContentType, fmt.Errorf("%d Content-Type fields", len(ct))
	}
	mt, params, err := mime.ParseMediaType(ct[0])
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, CodeOAuthContentType, fmt.Errorf("Content-Type %q is not application/x-www-form-urlencoded", ct[0])
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, CodeOAuthContentType, fmt.Errorf("Content-Type parameter %s=%s", k, v)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return nil, CodeBodyUnreadable, fmt.Errorf("body: %w", err)
	}
	if len(body) > maxFormBytes {
		return nil, CodeBodyTooLarge, fmt.Errorf("body over %d bytes", maxFormBytes)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, CodeOAuthRequestInvalid, fmt.Errorf("form: %w", err)
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, CodeOAuthParamRepeated, fmt.Errorf("parameter %s given %d times", k, len(v))
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v[0]) {
			return nil, CodeOAuthRequestInvalid, fmt.Errorf("parameter %q is not UTF-8", k)
		}
	}
	return form, "", nil
}

// refuseBroker records a refused broker call and answers it as RFC 6749
// §5.2 does, with Rampart's code beside the OAuth error; description,
// when set, replaces the code's fixed text.
func (e *Enforcer) refuseBroker(ctx context.Context, b *brokerCall, code Code, cause error, description string) {
	o := e.refuse(ctx, b.x, code, cause, nil)
	e.metrics.observe(ctx, false, o.code, b.x.start)
	if o.code != code {
		description = "" // audit_unavailable: nothing of the cause is the client's
	}
	writeOAuthError(b.w, o.code, b.x.id, description)
}

// oauthErrorBody is RFC 6749 §5.2's error answer with Rampart's code.
type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Code        Code   `json:"code"`
	RequestID   string `json:"request_id"`
}

func writeOAuthError(w http.ResponseWriter, code Code, requestID, description string) {
	if description == "" {
		description = errorTable[code].message
	}
	code.setHeader(w.Header())
	if code.Status() == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
	}
	writeJSON(w, code.Status(), oauthErrorBody{Error: oauthError(code), Description: description, Code: code, RequestID: requestID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types reach here
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	writeReply(w, status, b)
}

// denialCode is the code of a policy decision that is not allow.
func denialCode(d policy.Decision) Code {
	switch d.Code {
	case policy.DecisionBudgetExceeded:
		return CodeBudgetExceeded
	case policy.DecisionBudgetTableFull:
		return CodeBudgetTableFull
	case policy.DecisionTaskScope:
		return CodeTaskScopeViolation
	}
	return CodePolicyDenied
}

// brokerPolicy asks policy about a broker call, whose parameters are
// args, and records a denial. It reports whether the call was allowed;
// when it was not, the caller has been answered: with the denial, or,
// when inactiveOnDeny, as introspection answers a token it may not see.
func (e *Enforcer) brokerPolicy(ctx context.Context, b *brokerCall, args map[string]any, inactiveOnDeny bool) (policy.Decision, bool) {
	d := e.decidePolicy(ctx, b.x, args)
	if d.Effect == event.EffectAllow {
		return d, true
	}
	dec := d.Event()
	dec.Shadow = d.Shadow
	code := denialCode(d)
	if err := e.record(ctx, b.x, dec, d.Obligations.OnAuditUnavailable); err != nil {
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return d, false
	}
	e.metrics.observe(ctx, false, code, b.x.start)
	if inactiveOnDeny {
		writeInactive(b.w)
		return d, false
	}
	writeOAuthError(b.w, code, b.x.id, d.Reason)
	return d, false
}
