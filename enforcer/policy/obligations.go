package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// Obligations are what the deciding rule (and, for Redact, every matching
// audit rule) asks of the enforcer beyond allow or deny.
type Obligations struct {
	// Redact lists argument paths ("token", "auth.password") whose values
	// must be replaced before the arguments are written to the audit
	// record. Apply them with Redact.
	Redact []string `json:"redact,omitempty"`
	// RecordArgs asks that the call's arguments (redacted) be written to
	// the audit record. Without it only their digest is: arguments are
	// recorded only where policy says so.
	RecordArgs bool `json:"record_args,omitempty"`
	// OnAuditUnavailable overrides, for this rule's decisions, what the
	// enforcer does when JetStream cannot record them: "spool" or
	// "refuse"; "" keeps the enforcer's configured default.
	OnAuditUnavailable string `json:"on_audit_unavailable,omitempty"`
	// Budget is the deciding rule's call budget, nil when it has none. It
	// has already been charged by Decide when the policy holds Budgets.
	Budget *Budget `json:"budget,omitempty"`
	// BudgetUsed is the number of calls counted in the current window,
	// including this one, when Budget was charged.
	BudgetUsed int64 `json:"budget_used,omitempty"`
	// Credential, when set, is the credential the allowed call carries in
	// place of the caller's own; it overrides the destination's. Its ttl
	// is bounded by the enforcer's credentials.max_ttl.
	Credential *credential.Spec `json:"credential,omitempty"`
}

// BudgetScope is what a budget counts calls per.
type BudgetScope string

// Budget scopes.
const (
	PerSession BudgetScope = "session"
	PerTask    BudgetScope = "task"
)

// SourceClient is the SessionSource or TaskSource of an id the client chose:
// budgets per session or task never count calls per such an id alone.
const SourceClient = "client"

// Budget is a rule's call budget: at most Calls allowed calls per session
// (or task) in each Window, the window starting at the first counted call.
type Budget struct {
	Per    BudgetScope
	Calls  int64
	Window time.Duration
}

// MarshalJSON writes the window as a Go duration string, as in YAML.
func (b Budget) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Per    BudgetScope `json:"per"`
		Calls  int64       `json:"calls"`
		Window string      `json:"window"`
	}{b.Per, b.Calls, b.Window.String()})
}

// RedactedValue replaces redacted argument values.
const RedactedValue = "[REDACTED]"

// validRedactPath checks a dotted path of argument keys.
func validRedactPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return errors.New("empty segment")
		}
	}
	return nil
}

// Redact returns args with the value at each dotted path replaced by
// RedactedValue. Paths descend through nested objects; a path that does
// not exist is ignored. args itself is not modified: the maps on the way
// to a redacted value are copied, everything else is shared.
func Redact(args map[string]any, paths []string) map[string]any {
	if len(paths) == 0 || len(args) == 0 {
		return args
	}
	out := args
	copied := false
	for _, p := range paths {
		if !hasPath(out, p) {
			continue
		}
		if !copied {
			out = shallowCopy(args)
			copied = true
		}
		redactPath(out, p)
	}
	return out
}

func hasPath(m map[string]any, p string) bool {
	head, rest, nested := strings.Cut(p, ".")
	v, ok := m[head]
	if !ok {
		return false
	}
	if !nested {
		return true
	}
	sub, ok := v.(map[string]any)
	return ok && hasPath(sub, rest)
}

// redactPath replaces the value at p in m, which the caller owns, copying
// the nested maps on the way so the input's maps stay untouched.
func redactPath(m map[string]any, p string) {
	head, rest, nested := strings.Cut(p, ".")
	if !nested {
		m[head] = RedactedValue
		return
	}
	sub := shallowCopy(m[head].(map[string]any)) // hasPath checked the type
	m[head] = sub
	redactPath(sub, rest)
}

func shallowCopy(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
