package enforcer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
	"golang.org/x/text/unicode/norm"
)

// check is one request as a mode presents it to the decision path: what
// the mode knows of the original request, whichever way it arrived.
type check struct {
	method, host, path string // path without the query, percent-decoded
	rawPath            string // path as sent, to refuse encoded separators
	query              string // the raw query string
	header             http.Header
	// body is the request body, nil when the mode cannot see it (an nginx
	// auth_request subrequest carries none): the decision is then made on
	// identity, method, host and path alone.
	body          io.Reader
	bodyTruncated bool // the gateway sent only part of the body
	// peerSPIFFE is the SPIFFE ID of a verified client certificate, or the
	// principal a trusted gateway reported.
	peerSPIFFE string
	// certErr is why the client certificate's SPIFFE ID could not be read.
	certErr error
	// untrusted marks a check from an address outside trusted_proxies;
	// nothing it forwarded is believed.
	untrusted bool
	// refusal is why the mode refuses what it was sent (with refusalCode),
	// decided once the caller is identified so that the refusal is theirs.
	refusal     error
	refusalCode Code
}

// outcome is the decision path's answer, which each mode turns into its
// own protocol: forward or not, with which status, headers and body.
type outcome struct {
	id     string
	allow  bool
	code   Code   // why it was refused; "" when allowed
	status int    // HTTP status of the answer when refused
	reply  []byte // JSON answer when refused
	body   []byte // the request body read, to forward when allowed
	x      *exchange
	span   trace.SpanContext // the decision's span, the backend's parent
	// credential is the token that replaces the caller's credentials
	// upstream, "" when the destination asks for none.
	credential string
}

// upstreamHeader is what an allowed request carries to the backend; only
// the enforcer sets these, so the backend can trust them.
func (o *outcome) upstreamHeader() http.Header {
	h := http.Header{}
	h.Set(HeaderRequestID, o.id)
	if o.x.ident != nil {
		h.Set(HeaderTenant, o.x.ident.Tenant)
		h.Set(HeaderSubject, o.x.ident.Subject)
	}
	return h
}

// decide is the one decision path of every mode: evaluate, then record.
// The outcome is recorded (acknowledged by JetStream, or spooled) before it
// is returned; when it cannot be, the outcome is audit_unavailable and
// nothing may be forwarded.
func (e *Enforcer) decide(ctx context.Context, c *check) *outcome {
	if c.refusal == nil && reservedPath(c.path) {
		// What the enforcer serves there never reaches decide.
		c.refusal, c.refusalCode = fmt.Errorf("path %q is the enforcer's own namespace, not the backend's", c.path), CodeNotFound
	}
	ctx, span := e.startDecision(ctx, c.header)
	o := e.decideOnce(ctx, c)
	endDecision(span, o)
	e.metrics.observe(ctx, o.allow, o.code, o.x.start)
	return o
}

func (e *Enforcer) decideOnce(ctx context.Context, c *check) *outcome {
	v := e.evaluate(ctx, c)
	if v.code != "" {
		return e.refuse(ctx, v.x, v.code, v.cause, v.rpcErr)
	}
	d := v.policy
	dec := d.Event()
	dec.Shadow = d.Shadow
	x := v.x
	if c := d.Obligations.Credential; c != nil {
		x.credential = c // the deciding rule's credential over the destination's
	}
	var minted *mint
	if d.Effect == event.EffectAllow && x.credential != nil {
		var err error
		if minted, err = e.credentialFor(ctx, x); err != nil {
			code := CodeCredentialUnavailable
			if errors.Is(err, errRevocationsStale) {
				code = CodeRevocationsStale
			}
			return e.refuse(ctx, x, code, err, nil)
		}
		dec.CredentialJTI = minted.token.JTI
		defer minted.done() // after keep: a call waiting on this mint finds the token kept
	}
	if d.Effect == event.EffectAllow && x.ident.TaskID != "" {
		// The shared record has the last word: a task that ended at
		// another instance a moment ago refuses here, before anything is
		// recorded as allowed or forwarded.
		if code, err := e.chargeTask(ctx, x, minted); err != nil {
			if !e.outageTolerated(x, minted, err) {
				return e.refuse(ctx, x, code, err, nil)
			}
			dec.Reason += " (task state unreachable: decided on this instance's view, as nats.on_unavailable is spool)"
		}
	}
	if err := e.record(ctx, x, dec, d.Obligations.OnAuditUnavailable, minted.event()...); err != nil {
		return e.unavailable(x, err)
	}
	minted.keep(e.minter) // recorded: now it may be reused
	if d.Effect != event.EffectAllow {
		code := denialCode(d)
		return &outcome{id: x.id, code: code, status: code.Status(), x: x,
			reply: refusalBody(x, code, d.Reason, d.RuleID, d.PolicyID)}
	}
	o := &outcome{id: x.id, allow: true, status: http.StatusOK, body: v.body, x: x}
	if minted != nil {
		o.credential = minted.token.Raw
	}
	return o
}

// verdict is what evaluate concluded of one request, not yet recorded:
// a refusal before policy (code set) or the policy's decision.
type verdict struct {
	x      *exchange
	code   Code       // refused before or outside policy; "" when policy decided
	cause  error      // why, for the record
	rpcErr *mcp.Error // answered as a JSON-RPC error when set
	policy policy.Decision
	body   []byte // the request body read, to forward when allowed
}

// evaluate identifies, reads, parses, validates and decides: everything
// but recording, so it does no I/O beyond reading the body.
func (e *Enforcer) evaluate(ctx context.Context, c *check) verdict {
	x := e.newExchange(c)
	refuse := func(code Code, cause error, rpcErr *mcp.Error) verdict {
		return verdict{x: x, code: code, cause: cause, rpcErr: rpcErr}
	}
	if code, err := e.admit(ctx, c, x); err != nil {
		return refuse(code, err, nil)
	}
	body, args, r := e.readCall(c, x)
	if r != nil {
		return refuse(r.code, r.cause, r.rpcErr)
	}
	if x.answerID != nil && !e.solicited(x) {
		return refuse(CodeResponseUnsolicited, fmt.Errorf("response to request %s, which the server did not send this caller in session %q", x.answerID, x.mcpSession), nil)
	}
	dest, _ := e.dests.Match(c.host, c.path, x.request.Tool)
	x.request.Destination, x.request.DataClass, x.credential = dest.Destination, dest.DataClass, dest.Credential
	return verdict{x: x, policy: e.decidePolicy(ctx, x, args), body: body}
}

// admit checks what needs no body: where the check came from, who the
// caller is (identity first, so that every later refusal is attributable
// to a caller), the session and task ids the caller sends, the client
// certificate, and the path. It returns the refusal's code and cause, or
// a nil error.
func (e *Enforcer) admit(ctx context.Context, c *check, x *exchange) (Code, error) {
	if c.untrusted {
		return CodeProxyUntrusted, errors.New("check from an address outside trusted_proxies")
	}
	span := e.startSpan(ctx, "rampart.identity")
	ident, err := e.verifier.Verify(ctx, c.header)
	endSpan(span)
	if err != nil {
		return Code(identity.CodeOf(err)), err
	}
	x.ident = ident
	if ident.JTI != "" && e.revocations.Revoked(ident.JTI) {
		return CodeTokenRevoked, fmt.Errorf("token jti %q is revoked", ident.JTI)
	}
	if code, err := e.bindClientIDs(c.header, ident, x); err != nil {
		return code, err
	}
	if code, err := e.taskGate(x); err != nil {
		return code, err
	}
	if c.certErr != nil {
		return CodeClientCertInvalid, c.certErr
	}
	if c.refusal != nil {
		return c.refusalCode, c.refusal
	}
	if c.peerSPIFFE != "" {
		// The certificate names the workload; a JWT-SVID must name the same.
		if ident.SPIFFEID != "" && ident.SPIFFEID != c.peerSPIFFE {
			return CodeSPIFFEMismatch, fmt.Errorf("token SPIFFE ID %q, client certificate %q", ident.SPIFFEID, c.peerSPIFFE)
		}
		ident.SPIFFEID = c.peerSPIFFE
	}
	if err := canonicalPath(c.path, c.rawPath); err != nil {
		return CodePathInvalid, err
	}
	return "", nil
}

// decidePolicy asks policy about the exchange and, where it says so,
// records the arguments, redacted first.
func (e *Enforcer) decidePolicy(ctx context.Context, x *exchange, args map[string]any) policy.Decision {
	span := e.startSpan(ctx, "rampart.policy")
	d := e.policy.Decide(ctx, e.input(x, args))
	endSpan(span)
	if d.Obligations.RecordArgs && args != nil {
		var err error
		if x.request.Args, err = json.Marshal(policy.Redact(args, d.Obligations.Redact)); err != nil {
			x.request.Args = nil
		}
	}
	return d
}

// newExchange starts the record of c, with a fresh request id.
func (e *Enforcer) newExchange(c *check) *exchange {
	x := &exchange{
		start:   time.Now(),
		trace:   event.Trace{TraceParent: c.header.Get("Traceparent"), TraceState: c.header.Get("Tracestate")},
		request: &event.Request{Method: c.method, Host: c.host, Path: c.path, Query: c.query},
	}
	for _, name := range e.cfg.RecordHeaders {
		if v := c.header.Values(name); len(v) > 0 {
			if x.request.Headers == nil {
				x.request.Headers = make(map[string]string, len(e.cfg.RecordHeaders))
			}
			x.request.Headers[strings.ToLower(name)] = strings.Join(v, ", ")
		}
	}
	x.id = e.ids.New(x.start)
	return x
}

// canonicalPath refuses paths a backend could resolve to somewhere other
// than what the policy matched: dot segments, empty segments, encoded
// slashes, dots or backslashes, and the forms some backends normalise on
// their own — matrix parameters (";": Tomcat and Spring resolve
// /mcp/..;/admin to /admin), double encoding ("%25"), bytes that are not
// UTF-8 (overlong encodings of "." and "/"), control characters, and
// characters that compatibility-fold (NFKC) to a separator.
func canonicalPath(p, raw string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q is not absolute", p)
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p || strings.ContainsAny(p, "\\;") {
		return fmt.Errorf("path %q is not canonical", p)
	}
	lower := strings.ToLower(raw)
	for _, enc := range []string{"%2f", "%2e", "%5c", "%00", "%25", "%3b"} {
		if strings.Contains(lower, enc) {
			return fmt.Errorf("path %q encodes %s", raw, enc)
		}
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("path %q is not UTF-8", raw)
	}
	for _, r := range p {
		switch {
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("path %q holds a control character", raw)
		case r >= utf8.RuneSelf && (strings.ContainsAny(norm.NFKC.String(string(r)), "./\\;%") || slashLike[r]):
			return fmt.Errorf("path %q holds %U, which folds to a separator", raw, r)
		}
	}
	return nil
}

// slashLike are slashes NFKC leaves alone that "best fit" code page
// mappings (IIS, Windows file APIs) still turn into / or \.
var slashLike = map[rune]bool{0x2044: true, 0x2215: true, 0x2216: true, 0x29F5: true, 0x29F8: true, 0x29F9: true}

// input is what the policy sees of an exchange.
func (e *Enforcer) input(x *exchange, args map[string]any) *policy.Input {
	id := x.ident
	chain := make([]string, len(id.Chain))
	for i, a := range id.Chain {
		chain[i] = a.Subject
	}
	return &policy.Input{
		Tenant: id.Tenant, Subject: id.Subject, Issuer: id.Issuer, Actor: id.CurrentActor(), Chain: chain,
		SPIFFEID: id.SPIFFEID, Session: id.SessionID, Task: id.TaskID, TaskScope: taskScope(x.task), SessionSource: id.SessionSource, TaskSource: id.TaskSource,
		Method: x.request.Method, Host: x.request.Host, Path: x.request.Path, Query: x.request.Query, Resource: x.request.Resource, Headers: x.request.Headers,
		RPCKind: x.request.RPCKind, RPCMethod: x.request.RPCMethod, Tool: x.request.Tool, Prompt: x.request.Prompt, Args: args,
		Destination: x.request.Destination, DataClass: x.request.DataClass,
	}
}

// record publishes the request and decision events of x, and then extra
// (a credential minted for it), and waits until they are recorded; mode,
// when set, is the deciding rule's on_audit_unavailable.
func (e *Enforcer) record(ctx context.Context, x *exchange, d *event.Decision, mode string, extra ...*event.Event) error {
	// Every event of an exchange repeats the request's summary, so each row
	// in ClickHouse says on its own what was asked.
	boundRecord(x.request, d)
	base := event.Event{Time: x.start.UTC(), Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(), Request: x.request}
	req, dec := base, base
	req.Kind = event.KindRequest
	dec.Kind, dec.Decision = event.KindDecision, d
	dec.Time = time.Now().UTC()
	span := e.startSpan(ctx, "rampart.record")
	defer endSpan(span)
	if len(extra) == 0 {
		return e.audit.PublishMode(ctx, mode, &req, &dec)
	}
	return e.audit.PublishMode(ctx, mode, append([]*event.Event{&req, &dec}, extra...)...)
}

// refuse records a request refused before or outside policy and returns
// the refusal — or audit_unavailable when it cannot be recorded. rpcErr,
// when set, is answered as a JSON-RPC error response.
func (e *Enforcer) refuse(ctx context.Context, x *exchange, code Code, cause error, rpcErr *mcp.Error) *outcome {
	d := &event.Decision{
		Effect:     event.EffectDeny,
		PolicyID:   e.policy.Policy().ID(),
		PolicyHash: e.policy.Policy().Hash(),
		Code:       string(code),
		Reason:     cause.Error(),
	}
	if err := e.record(ctx, x, d, ""); err != nil {
		return e.unavailable(x, err)
	}
	o := &outcome{id: x.id, code: code, status: code.Status(), x: x}
	if rpcErr != nil {
		o.reply = rpcErr.Response(map[string]string{"code": string(code), "request_id": x.id})
	} else {
		o.reply = refusalBody(x, code, "", "", "")
	}
	return o
}

func (e *Enforcer) unavailable(x *exchange, err error) *outcome {
	e.log.Error("request refused: events not recorded", "request_id", x.id, "err", err)
	return &outcome{id: x.id, code: CodeAuditUnavailable, status: CodeAuditUnavailable.Status(), x: x,
		reply: refusalBody(x, CodeAuditUnavailable, "", "", "")}
}

// refusalBody is the answer to a refused exchange: a JSON-RPC error for
// the request's id once it was read on an MCP endpoint — so an MCP client
// keeps its session, as it would after any error of the server's — and
// Rampart's error body otherwise. Both carry the code, the rule and the
// request id; message, when set, replaces the code's fixed text.
func refusalBody(x *exchange, code Code, message, ruleID, policyID string) []byte {
	if x.rpcID == nil {
		return errorBody(code, x.id, message, func(b *apiError) { b.Error.RuleID, b.Error.PolicyID = ruleID, policyID })
	}
	if message == "" {
		message = errorTable[code].message
	}
	rpcCode := mcp.CodeRefused
	if code == CodeArgsInvalid {
		rpcCode = mcp.CodeInvalidParams
	}
	data := struct {
		Code      Code   `json:"code"`
		RequestID string `json:"request_id"`
		RuleID    string `json:"rule_id,omitempty"`
		PolicyID  string `json:"policy_id,omitempty"`
	}{code, x.id, ruleID, policyID}
	return (&mcp.Error{Code: rpcCode, Message: message, ID: x.rpcID}).Response(data)
}

// rpcCode maps a JSON-RPC error code to the API code.
func rpcCode(c int) Code {
	switch c {
	case mcp.CodeParseError:
		return CodeRPCParseError
	case mcp.CodeInvalidRequest:
		return CodeRPCInvalidRequest
	}
	return CodeRPCInvalidParams
}

// trusted reports whether addr is one of the trusted proxies.
func (e *Enforcer) trusted(addr netip.Addr) bool { return inPrefixes(e.proxies, addr) }

// inPrefixes reports whether addr lies in one of prefixes.
func inPrefixes(prefixes []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// remoteAddr is the peer address of r, invalid when unknown.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
