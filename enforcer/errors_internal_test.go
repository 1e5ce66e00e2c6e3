package enforcer

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestEveryCodeHasAnAnswer: a code declared without an entry in errorTable
// answers 500 with no message, which is how a new refusal goes unnoticed.
func TestEveryCodeHasAnAnswer(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		call, ok := node.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "Code" {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok {
			return true // identity's codes, filled in by init
		}
		code, _ := strconv.Unquote(lit.Value)
		n++
		if e, ok := errorTable[Code(code)]; !ok || e.message == "" || e.status < 400 {
			t.Errorf("code %q has no status and message in errorTable", code)
		}
		return true
	})
	if n < 20 {
		t.Fatalf("found only %d codes in errors.go", n)
	}
}
