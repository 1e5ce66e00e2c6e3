package enforcer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
)

// mint is the credential an allowed call carries, and, when it was minted
// for this call rather than found in the cache, what is needed to record
// and then keep it.
type mint struct {
	token credential.Token
	req   credential.Request
	fresh bool
	x     *exchange
	// release lets the next mint for the same key in (Minter.Lead).
	release func()
}

// errRevocationsStale refuses a credential while the revocations view is
// staler than revocations.max_staleness.
var errRevocationsStale = errors.New("revocations view stale")

// credentialFor finds or mints the token of x's destination credential.
// A miss waits for any mint of the same key under way, so racing calls of
// one task share one credential; the caller calls done once the token is
// kept or abandoned.
func (e *Enforcer) credentialFor(ctx context.Context, x *exchange) (*mint, error) {
	if e.minter == nil {
		// Config.Validate refuses a credential without a credentials
		// section; refusing here too keeps a call from going out with the
		// caller's own credentials should that ever change.
		return nil, fmt.Errorf("destination %s asks for a credential and none is configured", x.request.Destination)
	}
	if stale, age := e.revocations.Stale(); stale && e.revocations.RefuseWhenStale() {
		return nil, fmt.Errorf("%w: unconfirmed for %s", errRevocationsStale, age.Round(time.Millisecond))
	}
	spec, id := x.credential, x.ident
	m := &mint{x: x, req: credential.Request{
		Tenant: id.Tenant, Issuer: id.Issuer, Subject: id.Subject, Chain: id.Chain,
		TaskID: id.TaskID, SessionID: id.SessionID,
		Audience: spec.Audience, Scope: spec.Scope, TTL: spec.TTL,
		// Nothing outlives the caller's own token, nor the task's deadline.
		Deadline: id.Expires,
	}}
	if x.task != nil && !x.task.Deadline.IsZero() && (m.req.Deadline.IsZero() || x.task.Deadline.Before(m.req.Deadline)) {
		m.req.Deadline = x.task.Deadline
	}
	if len(m.req.Scope) == 0 && x.request.Tool != "" {
		// Unscoped by the destination: good for the one tool it was asked for.
		m.req.Scope = []string{x.request.Tool}
	}
	if m.cached(e) {
		return m, nil
	}
	release, err := e.minter.Lead(ctx, &m.req)
	if err != nil {
		return nil, fmt.Errorf("credential for %s: waiting for the mint under way: %w", spec.Audience, err)
	}
	if m.cached(e) { // kept by the mint this call waited for
		release()
		return m, nil
	}
	tok, err := e.minter.Mint(&m.req)
	if err != nil {
		release()
		return nil, fmt.Errorf("credential for %s: %w", spec.Audience, err)
	}
	m.token, m.fresh, m.release = tok, true, release
	return m, nil
}

// cached takes the live token kept for m's request, if there is one.
func (m *mint) cached(e *Enforcer) bool {
	tok, ok := e.minter.Cached(&m.req)
	if ok && !e.revocations.Revoked(tok.JTI) {
		m.token = tok
		return true
	}
	return false
}

// done ends a fresh mint's turn: after keep, or when the call is refused
// and the token abandoned.
func (m *mint) done() {
	if m != nil && m.release != nil {
		m.release()
	}
}

// event is the credential event of a freshly minted token, recorded with
// the decision that caused it; none for a cached one (already recorded).
func (m *mint) event() []*event.Event {
	if m == nil || !m.fresh {
		return nil
	}
	x := m.x
	return []*event.Event{{
		Kind: event.KindCredential, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(), Request: x.request,
		Credential: &event.Credential{
			Action: event.CredentialIssued, JTI: m.token.JTI, Audience: m.token.Audience, Scope: m.token.Scope,
			KeyID: m.token.KeyID, Expires: m.token.Expires.UTC(), Reason: "destination " + x.request.Destination,
		},
	}}
}

// keep caches a freshly minted token once its issue is recorded.
func (m *mint) keep(minter *credential.Minter) {
	if m != nil && m.fresh {
		minter.Keep(&m.req, m.token)
	}
}

// replaceCredentials removes from h every header the caller's credentials
// may travel in, under any spelling of its name, and sets Authorization
// to the minted token.
func replaceCredentials(h http.Header, strip []string, token string) {
	for k := range h {
		for _, s := range strip {
			if strings.EqualFold(k, s) {
				delete(h, k)
				break
			}
		}
	}
	h["Authorization"] = []string{"Bearer " + token}
}
