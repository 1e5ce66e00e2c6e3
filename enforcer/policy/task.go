package policy

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
)

// TaskScope is what an orchestrator declared a task for, as rules see it
// (task.purpose, task.tools, ...). Input.TaskScope is nil for a call
// without a task or under a task that was never declared.
type TaskScope struct {
	Purpose      string   `json:"purpose,omitempty" yaml:"purpose"`
	Tools        []string `json:"tools,omitempty" yaml:"tools"`
	Destinations []string `json:"destinations,omitempty" yaml:"destinations"`
	DataClasses  []string `json:"data_classes,omitempty" yaml:"data_classes"`
	// BudgetLeft is the calls the task's budget still allows across every
	// enforcer; -1 when it declared none.
	BudgetLeft int64 `json:"budget_left" yaml:"budget_left"`
	// Deadline is when the task ends at the latest.
	Deadline time.Time `json:"deadline,omitzero" yaml:"deadline"`
}

// Task is the CEL variable task: the call's task id and, when it was
// declared, its scope. Fields are read as task.id, task.declared,
// task.purpose, task.tools, task.destinations, task.data_classes,
// task.budget_left and task.deadline.
type Task struct {
	ID           string    `cel:"id"`
	Declared     bool      `cel:"declared"`
	Purpose      string    `cel:"purpose"`
	Tools        []string  `cel:"tools"`
	Destinations []string  `cel:"destinations"`
	DataClasses  []string  `cel:"data_classes"`
	BudgetLeft   int64     `cel:"budget_left"`
	Deadline     time.Time `cel:"deadline"`
}

// taskOf is the task variable of in.
func taskOf(in *Input) *Task {
	t := &Task{ID: in.Task, BudgetLeft: -1}
	if s := in.TaskScope; s != nil {
		t.Declared, t.Purpose, t.BudgetLeft, t.Deadline = true, s.Purpose, s.BudgetLeft, s.Deadline
		t.Tools, t.Destinations, t.DataClasses = s.Tools, s.Destinations, s.DataClasses
	}
	nonNil := func(l *[]string) {
		if *l == nil {
			*l = []string{}
		}
	}
	nonNil(&t.Tools)
	nonNil(&t.Destinations)
	nonNil(&t.DataClasses)
	return t
}

// WithinTaskScope reports whether the call in is inside what its task was
// declared for: the task was declared, and the call's tool, destination
// and data class are each empty or listed in the declaration. A call
// without a declared task is outside every scope.
func WithinTaskScope(in *Input) bool {
	s := in.TaskScope
	if in.Task == "" || s == nil {
		return false
	}
	listed := func(v string, l []string) bool { return v == "" || slices.Contains(l, v) }
	return listed(in.Tool, s.Tools) && listed(in.Destination, s.Destinations) && listed(in.DataClass, s.DataClasses)
}

// scopeFunction is what within_task_scope() expands to: a call on the
// task and the call's tool, destination and data class.
const scopeFunction = "rampart_within_task_scope"

// readsTaskScope reports whether a rule's expression calls
// within_task_scope(): its denials are task scope violations.
func readsTaskScope(expr string) bool { return strings.Contains(expr, "within_task_scope(") }

// taskFunctions declares the task type and within_task_scope().
func taskFunctions() []cel.EnvOption {
	return []cel.EnvOption{
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeFor[Task]()),
		cel.Variable("task", cel.ObjectType("policy.Task")),
		cel.Macros(cel.GlobalMacro("within_task_scope", 0,
			func(eh cel.MacroExprFactory, _ ast.Expr, _ []ast.Expr) (ast.Expr, *common.Error) {
				return eh.NewCall(scopeFunction, eh.NewIdent("task"), eh.NewIdent("tool"), eh.NewIdent("destination"), eh.NewIdent("data_class")), nil
			})),
		cel.Function(scopeFunction,
			cel.Overload(scopeFunction+"_task", []*cel.Type{cel.ObjectType("policy.Task"), cel.StringType, cel.StringType, cel.StringType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					t, ok := args[0].Value().(*Task)
					if !ok {
						return types.NewErr("within_task_scope: task is %T", args[0].Value())
					}
					tool, _ := args[1].(types.String)
					dest, _ := args[2].(types.String)
					class, _ := args[3].(types.String)
					in := &Input{Task: t.ID, Tool: string(tool), Destination: string(dest), DataClass: string(class)}
					if t.Declared {
						in.TaskScope = &TaskScope{Tools: t.Tools, Destinations: t.Destinations, DataClasses: t.DataClasses}
					}
					return types.Bool(WithinTaskScope(in))
				}))),
	}
}

// taskAdapter converts a Task to its CEL value with the environment's
// native types; decisions run only once the environment is built.
func taskAdapter() types.Adapter {
	env, err := celEnv()
	if err != nil {
		return types.DefaultTypeAdapter
	}
	return env.CELTypeAdapter()
}
