// Package backend is the middleware a tool server wraps itself in so that
// only calls carrying a Rampart task credential reach it, and so that
// every call it serves or refuses is on the record.
//
// A Verifier checks each request's bearer token against the enforcer
// fleet's JWKS (pinned issuer, EdDSA or ES256, typ at+jwt, the backend's
// own audience, exp and nbf with a small leeway), then against the
// revocations bucket RAMPART_REVOCATIONS, watched over JetStream, or, when
// NATS cannot be reached, against the enforcer's RFC 7662 introspection
// endpoint, to which it authenticates as its own workload
// (Config.IntrospectionTokenFile, re-read on a 401, or
// WithIntrospectionToken): the enforcer answers only callers it
// identifies and its policy allows. It reports each request as a backend_request event on
// rampart.v1.<tenant>.backend_request, where the correlator holds it to
// the enforcer's decisions: a call that no allowed decision forwarded is
// a bypass.
//
// The module depends on jwx and nats.go alone; the wire forms it shares
// with the schema module (the event, its subject, the revocation keys)
// are written here once and held to schema's by a test of the root module.
package backend
