// Package contract holds, in its tests, what the backend module writes
// down on its own (it may not depend on schema, so tool servers do not
// pull in the pipeline's dependencies) to schema's one definition: the
// backend_request event, its subject, the revocation keys and bucket, and
// the enforcer's request-id header and token type. Its end-to-end tests
// run the middleware against a real JetStream and credentials the
// enforcer's own minter signed.
package contract
