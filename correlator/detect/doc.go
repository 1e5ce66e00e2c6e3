// Package detect is Rampart's streaming detection engine. Rules (YAML
// files of CEL matches and one Sigma-style correlation each) are decoded
// strictly, type-checked and planned once (LoadDir, Shipped, Merge); the
// correlator feeds every event of the stream, in order, to an Engine
// (ObserveAgent: the event and what the agent inventory says of its
// agent, looked up live or read back from the stored row), which keeps bounded per-group state on event time and
// returns the alerts an event completes as ready-to-publish v1 events of
// kind alert, with ids derived from the finding so a redelivered or
// replayed event yields the same alert. Advance moves the clock for
// absence windows; Swap and Watch reload rules without losing the state
// of rules that did not change. RunFixtures backs `rampart detect test`.
//
// The phases: decode (spec.go), compile (fields.go, rule.go), load
// (ruleset.go, watch.go), evaluate (engine.go, correlate.go, alert.go,
// metrics.go), and tooling (fixtures.go).
package detect
