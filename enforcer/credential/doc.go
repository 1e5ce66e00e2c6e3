// Package credential is the enforcer's credential broker. On an allowed
// call whose destination asks for one, the enforcer replaces the caller's
// own credentials with a short-lived JWT minted here for this principal,
// this task, this audience and this scope (Minter), signed with a key
// whose public half is served at /.well-known/jwks.json (KeySet.Handler),
// and reused from a bounded per-tenant cache (Cache) so a busy task does
// not mint per call. Every mint becomes a credential event in the record,
// written by the enforcer before the token is cached or forwarded. The
// enforcer's broker endpoints mint with the same Minter and check tokens
// with Verify, which takes only what this fleet signed with a published
// key: the current one, the next, or one retiring until its tokens expire.
package credential
