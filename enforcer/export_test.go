package enforcer

import (
	"net/http"

	"github.com/rampart-io/rampart/enforcer/task"
)

// SetUpstreamTransport replaces how proxy mode reaches the upstream, so a
// test sees the outbound request exactly as the transport would send it.
func SetUpstreamTransport(e *Enforcer, rt http.RoundTripper) { e.proxy.Transport = rt }

// CredentialRevoked reports whether e's view of the revocations holds jti.
func CredentialRevoked(e *Enforcer, jti string) bool { return e.revocations.Revoked(jti) }

// CrashBeforeRevokedEvents has e stop, as if killed, between ending a
// task at its deadline or idle and recording its revoked events, for each
// task crash reports true of.
func CrashBeforeRevokedEvents(e *Enforcer, crash func(task.Record) bool) { e.crashPoint.Store(&crash) }
