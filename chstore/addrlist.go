package chstore

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// AddrList is a list of host:port addresses held as one comma-separated
// string, the form flags and environment variables give it. In YAML it
// may also be a sequence, one address an entry.
type AddrList string

// UnmarshalYAML takes a string ("a:9000,b:9000") or a sequence of
// addresses; an entry of a sequence may not itself hold a comma.
func (l *AddrList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = AddrList(s)
		return nil
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, a := range list {
			if strings.TrimSpace(a) == "" || strings.Contains(a, ",") {
				return fmt.Errorf("line %d: address list entry %q: one host:port an entry", n.Line, a)
			}
		}
		*l = AddrList(strings.Join(list, ","))
		return nil
	}
	return fmt.Errorf("line %d: an address list is a string or a sequence of host:port", n.Line)
}
