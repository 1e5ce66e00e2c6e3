package enforcer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

// grantTokenExchange is RFC 8693's grant type.
const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// exchangeRequest is a token exchange's parameters, read and checked.
type exchangeRequest struct {
	subject, actor *identity.Identity // actor nil without an actor_token
	taskDeadline   time.Time          // the subject's declared task's, zero without
	audience       string             // "" when the caller named none
	scope          []string
	tokenType      string // issued_token_type
}

// tokenAnswer is RFC 8693 §2.2.1's answer.
type tokenAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// exchangeToken is POST /_rampart/token: the caller (authenticated like
// any call) asks for a credential on behalf of the subject token's
// principal, acted for by the actor token's, if any. Policy decides it as
// destination rampart.token, and the allowing rule's credential
// obligation bounds what is minted: its audience, its scopes, its ttl.
func (e *Enforcer) exchangeToken(ctx context.Context, b *brokerCall) {
	g, ok := e.mintExchange(ctx, b)
	if !ok {
		return
	}
	dec := g.decision.Event()
	dec.Shadow, dec.CredentialJTI = g.decision.Shadow, g.token.JTI
	if err := e.record(ctx, b.x, dec, g.decision.Obligations.OnAuditUnavailable, g.issued(b)); err != nil {
		// A token whose issue the record lacks is never handed out.
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return
	}
	e.metrics.observe(ctx, true, "", b.x.start)
	writeJSON(b.w, http.StatusOK, tokenAnswer{
		AccessToken: g.token.Raw, IssuedTokenType: g.tokenType, TokenType: "Bearer",
		ExpiresIn: int64(time.Until(g.token.Expires).Round(time.Second) / time.Second), Scope: strings.Join(g.token.Scope, " "),
	})
}

// grantedExchange is an exchange decided and minted, not yet recorded.
type grantedExchange struct {
	*exchangeRequest
	decision policy.Decision
	req      *credential.Request
	token    credential.Token
}

// mintExchange reads, decides and mints an exchange; every refusal on the
// way is recorded and answered, and ok is false.
func (e *Enforcer) mintExchange(ctx context.Context, b *brokerCall) (g grantedExchange, ok bool) {
	q, code, err := e.readExchange(ctx, b.x.ident, b.form)
	if err != nil {
		e.refuseBroker(ctx, b, code, err, err.Error())
		return g, false
	}
	g.exchangeRequest = q
	if g.decision, ok = e.brokerPolicy(ctx, b, q.args(), false); !ok {
		return g, false
	}
	if g.req, code, err = q.grant(g.decision.Obligations.Credential, e.cfg.Identity.MaxChainDepth); err != nil {
		e.refuseBroker(ctx, b, code, fmt.Errorf("%w (rule %s)", err, g.decision.RuleID), err.Error())
		return g, false
	}
	if stale, age := e.revocations.Stale(); stale && e.revocations.RefuseWhenStale() {
		// As for a forwarded call's credential: this instance cannot know
		// the subject's task did not end elsewhere meanwhile.
		e.refuseBroker(ctx, b, CodeRevocationsStale, fmt.Errorf("%w: unconfirmed for %s", errRevocationsStale, age.Round(time.Millisecond)), "")
		return g, false
	}
	if g.token, err = e.minter.Mint(g.req); err != nil {
		e.refuseBroker(ctx, b, CodeCredentialUnavailable, err, "")
		return g, false
	}
	return g, true
}

// issued is the credential event of the exchange's token: its principal
// is the subject token's, with the chain the token carries, not the
// caller who asked for it (the request and decision name the caller).
func (g *grantedExchange) issued(b *brokerCall) *event.Event {
	r, t := g.req, g.token
	return &event.Event{
		Kind: event.KindCredential, Tenant: r.Tenant, RequestID: b.x.id, Trace: b.x.trace, Request: b.x.request,
		Identity: &event.Identity{Subject: r.Subject, Issuer: r.Issuer, SPIFFEID: g.subject.SPIFFEID, Chain: r.Chain,
			SessionID: r.SessionID, TaskID: r.TaskID},
		Credential: &event.Credential{Action: event.CredentialIssued, JTI: t.JTI, Audience: t.Audience, Scope: t.Scope,
			KeyID: t.KeyID, Expires: t.Expires.UTC(), Reason: "token exchange by " + principalName(b.x.ident)},
	}
}

// readExchange reads and checks the exchange's parameters and verifies
// its tokens with the identity stack: both of the caller's tenant, neither
// a Rampart credential nor revoked, the subject's task neither ended nor
// another principal's.
func (e *Enforcer) readExchange(ctx context.Context, caller *identity.Identity, f url.Values) (*exchangeRequest, Code, error) {
	if g := f.Get("grant_type"); g != grantTokenExchange {
		return nil, CodeGrantTypeUnsupported, fmt.Errorf("grant_type %q", g)
	}
	q := &exchangeRequest{tokenType: tokenTypeAccess}
	switch t := f.Get("requested_token_type"); t {
	case "", tokenTypeAccess:
	case tokenTypeJWT:
		q.tokenType = t
	default:
		return nil, CodeTokenTypeUnsupported, fmt.Errorf("requested_token_type %q", t)
	}
	aud, res := f.Get("audience"), f.Get("resource")
	if res != "" {
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, CodeOAuthRequestInvalid, fmt.Errorf("resource %q is not an absolute URI", res)
		}
	}
	switch {
	case aud != "" && res != "" && aud != res:
		return nil, CodeTargetNotGranted, fmt.Errorf("audience %q and resource %q name two targets; one credential has one", aud, res)
	case aud == "":
		aud = res
	}
	q.audience = aud
	for _, s := range strings.Fields(f.Get("scope")) {
		if err := credential.CheckScope(s); err != nil {
			return nil, CodeOAuthRequestInvalid, err
		}
		if !slices.Contains(q.scope, s) {
			q.scope = append(q.scope, s)
		}
	}
	var err error
	if q.subject, err = e.exchangedToken(ctx, f, "subject_token", true); err != nil {
		return nil, codeOf(err, CodeSubjectTokenInvalid), err
	}
	if q.actor, err = e.exchangedToken(ctx, f, "actor_token", false); err != nil {
		return nil, codeOf(err, CodeActorTokenInvalid), err
	}
	if q.subject.Tenant != caller.Tenant || q.actor != nil && q.actor.Tenant != caller.Tenant {
		t := ""
		if q.actor != nil {
			t = q.actor.Tenant
		}
		return nil, CodeTenantMismatch, fmt.Errorf("caller of tenant %q, subject of %q, actor of %q", caller.Tenant, q.subject.Tenant, t)
	}
	if q.actor != nil && !q.subject.MayActAllows(q.actor.Issuer, q.actor.Subject) {
		return nil, CodeActorTokenInvalid, fmt.Errorf("the subject's may_act %v does not name the actor %q of %q", q.subject.MayAct, q.actor.Subject, q.actor.Issuer)
	}
	// The credential acts for the subject: the subject's own call would
	// be refused with a revoked token or under a task it may not use.
	for _, id := range []*identity.Identity{q.subject, q.actor} {
		if id != nil && id.JTI != "" && e.revocations.Revoked(id.JTI) {
			return nil, CodeTokenRevoked, fmt.Errorf("token jti %q is revoked", id.JTI)
		}
	}
	sx := &exchange{ident: q.subject}
	if code, err := e.taskGate(sx); err != nil {
		return nil, code, fmt.Errorf("subject_token: %w", err)
	}
	if sx.task != nil {
		q.taskDeadline = sx.task.Deadline
	}
	return q, "", nil
}

// codedError carries the refusal code of a token parameter's failure.
type codedError struct {
	code Code
	err  error
}

func (c *codedError) Error() string { return c.err.Error() }
func (c *codedError) Unwrap() error { return c.err }

func codeOf(err error, fallback Code) Code {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return fallback
}

// exchangedToken verifies the token parameter name (with its _type) as
// the identity stack verifies a caller's; nil when it is absent and not
// required.
func (e *Enforcer) exchangedToken(ctx context.Context, f url.Values, name string, required bool) (*identity.Identity, error) {
	raw, typ := f.Get(name), f.Get(name+"_type")
	switch {
	case raw == "" && typ == "" && !required:
		return nil, nil
	case raw == "" || typ == "":
		return nil, &codedError{CodeOAuthRequestInvalid, fmt.Errorf("%s and %s_type are required together", name, name)}
	case typ != tokenTypeAccess && typ != tokenTypeJWT:
		return nil, &codedError{CodeTokenTypeUnsupported, fmt.Errorf("%s_type %q", name, typ)}
	case e.minter.IsIssuer(raw):
		return nil, &codedError{CodeTokenChained, fmt.Errorf("%s is a Rampart credential: credentials are not exchanged", name)}
	}
	id, err := e.verifier.VerifyToken(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", name, identity.CodeOf(err), err)
	}
	return id, nil
}

// args is what policy sees of the exchange, under args.
func (q *exchangeRequest) args() map[string]any {
	scope := make([]any, len(q.scope))
	for i, s := range q.scope {
		scope[i] = s
	}
	a := map[string]any{
		"audience": q.audience, "scope": scope, "requested_token_type": q.tokenType,
		"subject": q.subject.Subject, "subject_issuer": q.subject.Issuer, "task": q.subject.TaskID, "actor": "",
	}
	if q.actor != nil {
		a["actor"] = q.actor.Subject
	}
	return a
}

// grant is what the allowing rule's credential obligation grants of the
// exchange: its audience (the one asked, or the rule's when none was),
// the scopes asked if all are the rule's (the rule's when none were), and
// a life bounded by the rule's ttl (and max_ttl, in Mint), the subject
// token's exp, the actor token's and the subject's declared task's
// deadline.
func (q *exchangeRequest) grant(spec *credential.Spec, maxDepth int) (*credential.Request, Code, error) {
	switch {
	case spec == nil:
		return nil, CodeTargetNotGranted, errors.New("the allowing rule grants no credential")
	case q.audience != "" && q.audience != spec.Audience:
		return nil, CodeTargetNotGranted, fmt.Errorf("audience %q is not granted (the rule grants %q)", q.audience, spec.Audience)
	}
	scope := spec.Scope
	if len(q.scope) > 0 {
		for _, s := range q.scope {
			if !slices.Contains(spec.Scope, s) {
				return nil, CodeScopeExceeded, fmt.Errorf("scope %q is not granted (the rule grants %v)", s, spec.Scope)
			}
		}
		scope = q.scope
	}
	s := q.subject
	r := &credential.Request{
		Tenant: s.Tenant, Issuer: s.Issuer, Subject: s.Subject, Chain: slices.Clone(s.Chain),
		TaskID: s.TaskID, SessionID: s.SessionID, Audience: spec.Audience, Scope: scope, TTL: spec.TTL, Deadline: s.Expires,
	}
	if !q.taskDeadline.IsZero() && (r.Deadline.IsZero() || q.taskDeadline.Before(r.Deadline)) {
		r.Deadline = q.taskDeadline
	}
	if a := q.actor; a != nil {
		// RFC 8693 §4.1: the actor becomes the current actor, and the
		// actors before it, its own chain, nest inside.
		r.Chain = append(append(r.Chain, a.Chain...), event.Actor{Subject: a.Subject, Issuer: a.Issuer})
		if !a.Expires.IsZero() && (r.Deadline.IsZero() || a.Expires.Before(r.Deadline)) {
			r.Deadline = a.Expires
		}
	}
	if len(r.Chain) > maxDepth {
		return nil, CodeActorTokenInvalid, fmt.Errorf("the delegation chain would be %d deep, over max_chain_depth %d", len(r.Chain), maxDepth)
	}
	return r, "", nil
}
