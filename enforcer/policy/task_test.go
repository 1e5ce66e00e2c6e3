package policy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

const taskPolicy = `id: tasks
rules:
  - id: outside-task
    match: 'task.declared && !within_task_scope()'
    effect: deny
    reason: outside what the task was declared for
  - id: budget-low
    match: 'task.declared && task.budget_left == 0'
    effect: deny
  - id: undeclared-shell
    match: 'tool == "shell" && !within_task_scope()'
    effect: deny
  - id: declared-search
    match: 'task.declared && task.purpose.startsWith("ticket") && task.deadline > now && tool in task.tools'
    effect: allow
  - id: implicit-search
    match: '!task.declared && task.id != "" && tool == "search"'
    effect: allow
`

func TestTaskInPolicy(t *testing.T) {
	p, err := policy.Parse("tasks.yaml", []byte(taskPolicy))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	scope := func(edit func(*policy.TaskScope)) *policy.TaskScope {
		s := &policy.TaskScope{Purpose: "ticket 42", Tools: []string{"search", "crm"}, Destinations: []string{"crm"},
			DataClasses: []string{"internal"}, BudgetLeft: 3, Deadline: now.Add(time.Hour)}
		if edit != nil {
			edit(s)
		}
		return s
	}
	for _, c := range []struct {
		name     string
		in       policy.Input
		effect   event.Effect
		rule     string
		code     string
		inScope  bool
		scopeSet bool
	}{
		{"declared, in scope", policy.Input{Task: "t", Tool: "search", TaskScope: scope(nil)}, event.EffectAllow, "declared-search", "", true, true},
		{"destination listed", policy.Input{Task: "t", Tool: "crm", Destination: "crm", DataClass: "internal", TaskScope: scope(nil)}, event.EffectAllow, "declared-search", "", true, true},
		{"tool not declared", policy.Input{Task: "t", Tool: "shell", TaskScope: scope(nil)}, event.EffectDeny, "outside-task", policy.DecisionTaskScope, false, true},
		{"destination not declared", policy.Input{Task: "t", Tool: "search", Destination: "internet", TaskScope: scope(nil)}, event.EffectDeny, "outside-task", policy.DecisionTaskScope, false, true},
		{"data class not declared", policy.Input{Task: "t", Tool: "search", DataClass: "pii", TaskScope: scope(nil)}, event.EffectDeny, "outside-task", policy.DecisionTaskScope, false, true},
		{"tool case differs", policy.Input{Task: "t", Tool: "Search", TaskScope: scope(nil)}, event.EffectDeny, "outside-task", policy.DecisionTaskScope, false, true},
		{"empty declaration allows no tool", policy.Input{Task: "t", Tool: "search", TaskScope: scope(func(s *policy.TaskScope) { s.Tools = nil })}, event.EffectDeny, "outside-task", policy.DecisionTaskScope, false, true},
		{"budget spent", policy.Input{Task: "t", Tool: "search", TaskScope: scope(func(s *policy.TaskScope) { s.BudgetLeft = 0 })}, event.EffectDeny, "budget-low", "", true, true},
		{"past the deadline", policy.Input{Task: "t", Tool: "search", TaskScope: scope(func(s *policy.TaskScope) { s.Deadline = now.Add(-time.Second) })}, event.EffectDeny, policy.DefaultDenyRule, "", true, true},
		{"undeclared task", policy.Input{Task: "t", Tool: "search"}, event.EffectAllow, "implicit-search", "", false, false},
		{"undeclared task, out of every scope", policy.Input{Task: "t", Tool: "shell"}, event.EffectDeny, "undeclared-shell", policy.DecisionTaskScope, false, false},
		{"no task at all", policy.Input{Tool: "search"}, event.EffectDeny, policy.DefaultDenyRule, "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now = now
			d := p.Decide(context.Background(), &c.in)
			if d.Effect != c.effect || d.RuleID != c.rule || d.Code != c.code {
				t.Errorf("decision %s %s code %q (%s), want %s %s code %q", d.Effect, d.RuleID, d.Code, d.Reason, c.effect, c.rule, c.code)
			}
			if got := policy.WithinTaskScope(&c.in); got != c.inScope {
				t.Errorf("WithinTaskScope = %v, want %v", got, c.inScope)
			}
		})
	}
}

// A misspelt task field is refused at load, with the rule and line, like
// any type error.
func TestTaskFieldsTypeChecked(t *testing.T) {
	for _, expr := range []string{`task.purpos == ""`, `task == "t-1"`, `task.budget_left == "3"`, `within_task_scope(tool)`} {
		_, err := policy.Parse("bad.yaml", []byte("id: bad\nrules:\n  - id: r\n    match: '"+expr+"'\n    effect: allow\n"))
		var pe *policy.Error
		if !errors.As(err, &pe) || pe.Line != 4 || pe.Rule != "r" {
			t.Errorf("%s: %v, want a compile error at line 4 of rule r", expr, err)
		}
	}
}
