package enforcer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// revoke is POST /_rampart/revoke (RFC 7009): a live credential of the
// caller's tenant, when policy allows the caller destination
// rampart.revoke for its audience, is written to the revocations bucket
// (its jti's key) and its revocation recorded as a credential event, both
// before the answer. A token that is not such a credential answers 200 as
// well (RFC 7009 §2.2), nothing written, the attempt recorded.
func (e *Enforcer) revoke(ctx context.Context, b *brokerCall) {
	c, err := e.presented(b)
	var ce *codedError
	switch {
	case errors.As(err, &ce):
		e.refuseBroker(ctx, b, ce.code, err, err.Error())
		return
	case err != nil:
		e.revokedNothing(ctx, b, err)
		return
	}
	d, ok := e.brokerPolicy(ctx, b, credentialArgs(c), false)
	if !ok {
		return
	}
	rev := stream.Revocation{Tenant: c.Tenant, TaskID: c.TaskID, JTI: c.JTI, Reason: "revoked", By: principalName(b.x.ident),
		RevokedAt: time.Now().UTC(), Until: time.Unix(c.Expires, 0).UTC()}
	val, _ := json.Marshal(rev)
	dec := d.Event()
	dec.Shadow = d.Shadow
	var extra []*event.Event
	_, err = e.revocationKV.Create(ctx, stream.JTIRevocationKey(c.JTI), val)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		// The first revocation stands, recorded when it was made.
		dec.Reason = fmt.Sprintf("%s; jti %s already revoked", dec.Reason, c.JTI)
	case err != nil:
		e.refuseBroker(ctx, b, CodeRevocationUnavailable, fmt.Errorf("revocations: %w", err), "")
		return
	default:
		dec.Reason = fmt.Sprintf("%s; jti %s revoked", dec.Reason, c.JTI)
		extra = append(extra, revokedEvent(b.x, c, rev))
	}
	if err := e.record(ctx, b.x, dec, d.Obligations.OnAuditUnavailable, extra...); err != nil {
		// The revocation stands; only its record is missing, and the
		// caller is told so.
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return
	}
	e.metrics.observe(ctx, true, "", b.x.start)
	b.w.WriteHeader(http.StatusOK)
}

// revokedEvent is the credential event of c's revocation.
func revokedEvent(x *exchange, c *credential.Claims, rev stream.Revocation) *event.Event {
	var scope []string
	if c.Scope != "" {
		scope = splitScope(c.Scope)
	}
	return &event.Event{
		Kind: event.KindCredential, Tenant: c.Tenant, RequestID: x.id, Trace: x.trace, Request: x.request,
		Identity:   &event.Identity{Subject: c.Subject, Chain: c.Chain(), SessionID: c.SessionID, TaskID: c.TaskID},
		Credential: &event.Credential{Action: event.CredentialRevoked, JTI: c.JTI, Audience: c.Audience, Scope: scope, Expires: rev.Until, Reason: "revoked by " + rev.By},
	}
}

// revokedNothing records a revocation that revoked nothing — a token not
// issued here, expired or of another tenant — and answers 200 as RFC 7009
// asks, so that the answer tells the caller nothing of the token.
func (e *Enforcer) revokedNothing(ctx context.Context, b *brokerCall, why error) {
	d := &event.Decision{Effect: event.EffectDeny, PolicyID: e.policy.Policy().ID(), PolicyHash: e.policy.Policy().Hash(),
		Code: CodeTokenInactive, Reason: "nothing revoked: " + why.Error()}
	if err := e.record(ctx, b.x, d, ""); err != nil {
		e.metrics.observe(ctx, false, CodeAuditUnavailable, b.x.start)
		writeOAuthError(b.w, CodeAuditUnavailable, b.x.id, "")
		return
	}
	e.metrics.observe(ctx, false, Code(CodeTokenInactive), b.x.start)
	b.w.WriteHeader(http.StatusOK)
}

// principalName names a caller in a revocation record: its SPIFFE ID when
// it has one, else its subject.
func principalName(id *identity.Identity) string {
	if id.SPIFFEID != "" {
		return id.SPIFFEID
	}
	return id.Subject
}
