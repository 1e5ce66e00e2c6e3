// Package rules is Rampart's shipped detection pack: one YAML rule file
// per detection (see package detect for the language), each beside its
// fixtures (<rule>_test.yaml: events in, the alerts they must and must
// not raise). The files are embedded, so the correlator runs the pack
// without a rules directory; `rampart detect test correlator/rules`
// and this package's test run the fixtures.
package rules

import "embed"

// FS holds the pack's rule files and fixtures.
//
//go:embed *.yaml
var FS embed.FS
