package enforcer

import "net/http"

// SetUpstreamTransport replaces how proxy mode reaches the upstream, so a
// test sees the outbound request exactly as the transport would send it.
func SetUpstreamTransport(e *Enforcer, rt http.RoundTripper) { e.proxy.Transport = rt }

// CredentialRevoked reports whether e's view of the revocations holds jti.
func CredentialRevoked(e *Enforcer, jti string) bool { return e.revocations.Revoked(jti) }
