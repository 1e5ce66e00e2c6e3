package chstore_test

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-io/rampart/chstore"
)

// An address list in YAML is a string or a sequence; a sequence entry that
// smuggles a second address behind a comma, an empty entry or a map is
// refused, never read as something else.
func TestAddrListInYAML(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want []string // nil: refused
	}{
		"a string":                 {"addr: ch-1:9000", []string{"ch-1:9000"}},
		"a comma-separated string": {"addr: ch-1:9000, ch-2:9000", []string{"ch-1:9000", "ch-2:9000"}},
		"a sequence":               {"addr: [ch-1:9000, ch-2:9000]", []string{"ch-1:9000", "ch-2:9000"}},
		"a block sequence":         {"addr:\n  - ch-1:9000\n  - ch-2:9000", []string{"ch-1:9000", "ch-2:9000"}},
		"an entry with a comma":    {"addr: ['ch-1:9000,ch-3:9000', ch-2:9000]", nil},
		"an empty entry":           {"addr: [ch-1:9000, '']", nil},
		"a map":                    {"addr: {host: ch-1}", nil},
		"a nested sequence":        {"addr: [[ch-1:9000]]", nil},
		"a null entry":             {"addr: [null, ch-1:9000]", nil},
		"a tilde entry":            {"addr: [~, ch-1:9000]", nil},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := chstore.Defaults()
			dec := yaml.NewDecoder(strings.NewReader(tc.doc))
			dec.KnownFields(true)
			err := dec.Decode(&cfg)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("decoded %q, want an error", cfg.Addr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := cfg.Addrs(); !slices.Equal(got, tc.want) {
				t.Fatalf("Addrs = %q, want %q", got, tc.want)
			}
		})
	}
}
