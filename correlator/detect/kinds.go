package detect

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/rampart-io/rampart/schema/event"
)

// A kind prefilter: most expressions start with kind == "decision" (or
// kind in [...]), and an event of another kind cannot match them. Such
// an expression is skipped, without running CEL, for events of other
// kinds; this is most of the engine's speed, since a pack's rules each
// look at one or two kinds of a stream that mixes them all.

// kindMask is a set of event kinds, one bit each; 0 means any kind.
type kindMask uint16

// kindBit is the bit of an event kind. Kinds this version does not know
// share one bit, so a rule naming a future kind still sees its events.
func kindBit(k event.Kind) kindMask {
	switch k {
	case event.KindRequest:
		return 1 << 0
	case event.KindDecision:
		return 1 << 1
	case event.KindResponse:
		return 1 << 2
	case event.KindCheckpoint:
		return 1 << 3
	case event.KindToolSchema:
		return 1 << 4
	case event.KindPolicy:
		return 1 << 5
	case event.KindServerRequest:
		return 1 << 6
	case event.KindAlert:
		return 1 << 7
	case event.KindCredential:
		return 1 << 8
	case event.KindBackendRequest:
		return 1 << 9
	}
	return 1 << 15
}

// requiredKinds is the set of kinds an expression can match: from a
// conjunct kind == "x" or kind in ["x", "y"] at its top level, and 0
// (any) when it has none.
func requiredKinds(a *cel.Ast) kindMask {
	return kindsOf(a.NativeRep().Expr())
}

func kindsOf(e ast.Expr) kindMask {
	if e.Kind() != ast.CallKind {
		return 0
	}
	c := e.AsCall()
	args := c.Args()
	switch c.FunctionName() {
	case operators.LogicalAnd:
		// Either side's restriction holds for the whole; both: their
		// intersection (which may be empty: matches nothing).
		var m kindMask
		for i, x := range args {
			k := kindsOf(x)
			switch {
			case k == 0:
			case m == 0 && i == 0, m == 0:
				m = k
			default:
				m &= k
				if m == 0 {
					m = 1 << 14 // no kind at all: a bit no event has
				}
			}
		}
		return m
	case operators.Equals:
		if len(args) == 2 {
			if lit, ok := kindLiteral(args[0], args[1]); ok {
				return kindBit(event.Kind(lit))
			}
			if lit, ok := kindLiteral(args[1], args[0]); ok {
				return kindBit(event.Kind(lit))
			}
		}
	case operators.In:
		if len(args) == 2 && isKindIdent(args[0]) && args[1].Kind() == ast.ListKind {
			var m kindMask
			for _, el := range args[1].AsList().Elements() {
				if el.Kind() != ast.LiteralKind {
					return 0
				}
				s, ok := el.AsLiteral().(types.String)
				if !ok {
					return 0
				}
				m |= kindBit(event.Kind(s))
			}
			return m
		}
	}
	return 0
}

func isKindIdent(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == "kind" }

func kindLiteral(id, lit ast.Expr) (string, bool) {
	if !isKindIdent(id) || lit.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := lit.AsLiteral().(types.String)
	return string(s), ok
}

// The same reasoning for other string fields: a top-level conjunct
// field == "x" (or field in ["x", "y"]) is checked in Go before CEL runs,
// and an event with another value is no match without it. Most rules
// name an effect, a code or an RPC method, and most events have another.

// eqConstraint is one such conjunct: the field's slot and the values it
// may have.
type eqConstraint struct {
	field  int
	values []string
}

// constraintsOf lists the string-field equality conjuncts at the top
// level of e (kind excepted: kindsOf covers it), and the bool fields
// (inventory_loaded, agent_registered) it requires set or, negated, unset.
func constraintsOf(e ast.Expr) []eqConstraint {
	if i, ok := boolField(e); ok {
		return []eqConstraint{{field: i, values: []string{"true"}}}
	}
	if e.Kind() != ast.CallKind {
		return nil
	}
	c := e.AsCall()
	args := c.Args()
	switch c.FunctionName() {
	case operators.LogicalNot:
		if i, ok := boolField(args[0]); ok && len(args) == 1 {
			return []eqConstraint{{field: i, values: []string{"false"}}}
		}
	case operators.LogicalAnd:
		var out []eqConstraint
		for _, x := range args {
			out = append(out, constraintsOf(x)...)
		}
		return out
	case operators.Equals:
		if len(args) != 2 {
			return nil
		}
		for _, p := range [][2]ast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
			if i, ok := stringField(p[0]); ok && p[1].Kind() == ast.LiteralKind {
				if s, ok := p[1].AsLiteral().(types.String); ok {
					return []eqConstraint{{field: i, values: []string{string(s)}}}
				}
			}
		}
	case operators.In:
		i, ok := stringField(args[0])
		if len(args) != 2 || !ok || args[1].Kind() != ast.ListKind {
			return nil
		}
		var vals []string
		for _, el := range args[1].AsList().Elements() {
			if el.Kind() != ast.LiteralKind {
				return nil
			}
			s, ok := el.AsLiteral().(types.String)
			if !ok {
				return nil
			}
			vals = append(vals, string(s))
		}
		return []eqConstraint{{field: i, values: vals}}
	}
	return nil
}

// stringField reports whether e is a string variable other than kind,
// and its slot.
func stringField(e ast.Expr) (int, bool) {
	if e.Kind() != ast.IdentKind || e.AsIdent() == "kind" {
		return 0, false
	}
	i, ok := fieldIndex[e.AsIdent()]
	if !ok || fields[i].kind != kindString && fields[i].kind != kindAgent {
		return 0, false
	}
	return i, true
}

// boolField reports whether e is a bool variable, and its slot.
func boolField(e ast.Expr) (int, bool) {
	if e.Kind() != ast.IdentKind {
		return 0, false
	}
	i, ok := fieldIndex[e.AsIdent()]
	return i, ok && fields[i].kind == kindBool
}

// holds reports whether the activation's event can satisfy every
// constraint.
func holds(cs []eqConstraint, a *activation) bool {
	for _, c := range cs {
		v := a.text(c.field)
		ok := false
		for _, want := range c.values {
			if v == want {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
