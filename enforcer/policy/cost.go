package policy

import (
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The cost limit is enforced statically where it can be and at run time
// where it must be. At load, each expression's worst-case cost is
// estimated assuming no input value (string, list, map) exceeds
// MaxInputSize; an expression whose bound is within CostLimit runs
// unmetered, the others run with CEL's runtime meter and stop with an
// error (denying) once they exceed it. The meter is most of the cost and
// allocations of evaluating a simple rule, and simple rules are the bulk
// of a policy, while a rule that scans or nests over its input (exists,
// contains, matches, glob) keeps the meter.

// MaxInputSize is the size (characters, elements, entries) the static cost
// estimate assumes for any input value: the enforcer's default request
// body limit. Inputs larger than this can only make a statically bounded
// expression do proportionally more linear work; anything superlinear is
// metered regardless.
const MaxInputSize = 1 << 20

// staticCost estimates expression costs for the checker.
type staticCost struct{}

func (staticCost) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: MaxInputSize}
}

func (staticCost) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	size := func(n checker.AstNode) uint64 {
		if s := n.ComputedSize(); s != nil {
			return s.Max
		}
		return MaxInputSize
	}
	switch overloadID {
	case "glob_string_string":
		// RE2 over the name: like matches(), length times pattern states.
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: satMul(size(args[0])/10+1, size(args[1])/4+1)}}
	case "starts_with_any_string_list":
		// Each comparison reads at most the prefix. A literal list's
		// prefixes are the policy's own short strings; a list from the
		// input has at most MaxInputSize characters in all.
		c := size(args[1]) + 1
		if args[1].ComputedSize() == nil {
			c += MaxInputSize / 10
		}
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: c}}
	}
	return nil
}

// runtimeCost prices the custom functions for CEL's runtime meter the
// way staticCost does at load.
type runtimeCost struct{}

func (runtimeCost) CallCost(function, overloadID string, args []ref.Val, _ ref.Val) *uint64 {
	strLen := func(v ref.Val) uint64 {
		if s, ok := v.(types.String); ok {
			return uint64(len(s))
		}
		return 0
	}
	var c uint64
	switch overloadID {
	case "glob_string_string":
		if len(args) == 2 {
			c = satMul(strLen(args[0])/10+1, strLen(args[1])/4+1)
		}
	case "starts_with_any_string_list":
		if len(args) == 2 {
			c = 1
			if l, ok := args[1].(traits.Lister); ok {
				for it := l.Iterator(); it.HasNext() == types.True; {
					c += min(strLen(it.Next()), strLen(args[0]))/10 + 1
				}
			}
		}
	default:
		return nil
	}
	return &c
}

func satMul(a, b uint64) uint64 {
	if a != 0 && b > math.MaxUint64/a {
		return math.MaxUint64
	}
	return a * b
}

// programOptions returns how to plan ast, metered (true) when its
// estimated worst case exceeds CostLimit or cannot be estimated.
func programOptions(env *cel.Env, ast *cel.Ast) ([]cel.ProgramOption, bool) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	est, err := env.EstimateCost(ast, staticCost{})
	if err == nil && est.Max <= CostLimit {
		return opts, false
	}
	return append(opts, cel.CostTracking(runtimeCost{}), cel.CostLimit(CostLimit)), true
}
