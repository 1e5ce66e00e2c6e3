// Package event defines Rampart's audit event model: the envelope every
// enforcer publishes to JetStream and every collector writes to ClickHouse.
//
// Version 1 is encoded as JSON (see BENCHMARKS.md for the measurement behind
// the choice). Versioning rules, which consumers rely on:
//
//   - The envelope field "v" carries the major version. Fields are only ever
//     added within a major version; a consumer ignores fields it does not know.
//   - A breaking change (renamed or retyped field) becomes v2: it is published
//     on its own subject prefix (rampart.v2.>), decoded by a new DecodeV2, and
//     stored in new ClickHouse columns added by a migration. Enforcers publish
//     both versions during a rollout; collectors route by "v" and send
//     unknown versions to the dead-letter stream rather than guessing.
package event
