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
		list := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			var a string
			if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
				return fmt.Errorf("line %d: an address list entry is one host:port", e.Line)
			}
			if err := e.Decode(&a); err != nil {
				return err
			}
			if strings.TrimSpace(a) == "" || strings.Contains(a, ",") {
				return fmt.Errorf("line %d: address list entry %q: one host:port an entry", e.Line, a)
			}
			list = append(list, a)
		}
		*l = AddrList(strings.Join(list, ","))
		return nil
	}
	return fmt.Errorf("line %d: an address list is a string or a sequence of host:port", n.Line)
}
