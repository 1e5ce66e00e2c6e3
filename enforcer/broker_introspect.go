package enforcer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// CodeTokenInactive is recorded (never answered: introspection answers
// active false, revocation 200) for a token that is not a live credential
// of the caller's tenant: not issued here, expired, revoked or foreign.
const CodeTokenInactive = "token_inactive"

// revoked reports whether the credential c, or the task it was minted
// for, has a record in the revocations bucket, and which key holds it.
func (e *Enforcer) revoked(ctx context.Context, c *credential.Claims) (string, bool, error) {
	keys := []string{stream.JTIRevocationKey(c.JTI)}
	if c.TaskID != "" {
		keys = append(keys, stream.TaskRevocationKey(c.Tenant, c.TaskID))
	}
	for _, k := range keys {
		_, err := e.revocationKV.Get(ctx, k)
		switch {
		case err == nil:
			return k, true, nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return "", false, fmt.Errorf("revocations %s: %w", k, err)
		}
	}
	return "", false, nil
}

// presented is the credential a broker call names in its token
// parameter: verified, and of the caller's tenant. It returns why not as
// cause when it is not (claims may still be set: an expired token's).
func (e *Enforcer) presented(b *brokerCall) (*credential.Claims, error) {
	raw := b.form.Get("token")
	if raw == "" {
		return nil, &codedError{CodeOAuthRequestInvalid, errors.New("token is required")}
	}
	c, err := e.minter.Verify(raw)
	if err != nil {
		return c, err
	}
	if c.Tenant != b.x.ident.Tenant {
		// A caller learns nothing of another tenant's tokens, not even
		// that they are live.
		return c, fmt.Errorf("token of tenant %q, caller of %q", c.Tenant, b.x.ident.Tenant)
	}
	return c, nil
}

// credentialArgs is what policy sees of the credential a broker call
// names, under args.
func credentialArgs(c *credential.Claims) map[string]any {
	scope := []any{}
	for _, s := range splitScope(c.Scope) {
		scope = append(scope, s)
	}
	return map[string]any{"audience": c.Audience, "scope": scope, "jti": c.JTI, "subject": c.Subject, "task": c.TaskID}
}

// splitScope is a scope claim's scopes (RFC 6749 §3.3).
func splitScope(s string) []string { return strings.Fields(s) }

// introspect is POST /_rampart/introspect (RFC 7662): for an
// authenticated caller whom policy allows destination rampart.introspect
// for the token's audience (args.audience), the token's claims with
// active true when it is a live credential of the caller's tenant that is
// not revoked (neither its jti nor its task); active false for everything
// else, the reason recorded only.
func (e *Enforcer) introspect(ctx context.Context, b *brokerCall) {
	c, err := e.presented(b)
	var ce *codedError
	if errors.As(err, &ce) {
		e.refuseBroker(ctx, b, ce.code, err, err.Error())
		return
	}
	if err != nil {
		e.inactive(ctx, b, err)
		return
	}
	d, ok := e.brokerPolicy(ctx, b, credentialArgs(c), true)
	if !ok {
		return
	}
	key, revoked, err := e.revoked(ctx, c)
	switch {
	case err != nil:
		e.refuseBroker(ctx, b, CodeRevocationUnavailable, err, "")
		return
	case revoked:
		e.inactive(ctx, b, fmt.Errorf("jti %s revoked (%s)", c.JTI, key))
		return
	}
	dec := d.Event()
	dec.Shadow = d.Shadow
	dec.Reason = fmt.Sprintf("%s; jti %s active", dec.Reason, c.JTI)
	if err := e.record(ctx, b.x, dec, d.Obligations.OnAuditUnavailable); err != nil {
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return
	}
	e.metrics.observe(ctx, true, "", b.x.start)
	writeJSON(b.w, http.StatusOK, activeAnswer{Active: true, TokenType: "Bearer", Claims: c})
}

// activeAnswer is RFC 7662 §2.2's answer for a live token: its claims.
type activeAnswer struct {
	Active    bool   `json:"active"`
	TokenType string `json:"token_type"`
	*credential.Claims
}

// inactive records why a presented token is not live and answers
// active false, all reasons alike (RFC 7662 §2.2).
func (e *Enforcer) inactive(ctx context.Context, b *brokerCall, why error) {
	d := &event.Decision{Effect: event.EffectDeny, PolicyID: e.policy.Policy().ID(), PolicyHash: e.policy.Policy().Hash(),
		Code: CodeTokenInactive, Reason: why.Error()}
	if err := e.record(ctx, b.x, d, ""); err != nil {
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return
	}
	e.metrics.observe(ctx, false, Code(CodeTokenInactive), b.x.start)
	writeInactive(b.w)
}

func writeInactive(w http.ResponseWriter) { writeReply(w, http.StatusOK, []byte(`{"active":false}`)) }
