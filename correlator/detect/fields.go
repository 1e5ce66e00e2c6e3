package detect

import (
	"encoding/json"
	"net"
	"strconv"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	celref "github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// The fields of one event that rules see, defined once: each is a CEL
// variable of match expressions, and the scalar ones (strings and ints)
// can also be group_by fields and the field of value_count and new_value.
// The names are those of the enforcer's policy environment where the
// two overlap (subject, actor, chain, chain_depth, session, task, tool,
// destination, data_class, ...), so a rule reads like a policy; the
// event's own names (session_id, task_id, principal) are aliases.
// Absent values are the zero value ("" or 0, an empty list or map), so
// a rule on tool never matches an event without one.

type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindList // list(string)
	kindIntList
	kindMap // map(string, dyn)
	kindStringMap
	kindTime
	kindAgent // string, of the inventory's answer
	kindBool  // of the inventory's answer
)

// field is one variable: its name, type and how to read it.
type field struct {
	name string
	kind fieldKind
	str  func(*event.Event) string // kindString
	num  func(*event.Event) int64  // kindInt
	list func(*event.Event) []string
	nums func(*event.Event) []uint64
	smap func(*event.Event) map[string]string
	// Of the agent inventory's answer for the event (kindAgent, kindBool).
	agent func(*ddl.Agent) string
	flag  func(*ddl.Agent) bool
	tm    func(*event.Event) time.Time // kindTime
}

func ident(e *event.Event) *event.Identity {
	if e.Identity == nil {
		return &noIdentity
	}
	return e.Identity
}

func req(e *event.Event) *event.Request {
	if e.Request == nil {
		return &noRequest
	}
	return e.Request
}

func dec(e *event.Event) *event.Decision {
	if e.Decision == nil {
		return &noDecision
	}
	return e.Decision
}

func resp(e *event.Event) *event.Response {
	if e.Response == nil {
		return &noResponse
	}
	return e.Response
}

func alert(e *event.Event) *event.Alert {
	if e.Alert == nil {
		return &noAlert
	}
	return e.Alert
}

var (
	noIdentity event.Identity
	noRequest  event.Request
	noDecision event.Decision
	noResponse event.Response
	noAlert    event.Alert
)

func strField(name string, f func(*event.Event) string) field {
	return field{name: name, kind: kindString, str: f}
}
func agentField(name string, f func(*ddl.Agent) string) field {
	return field{name: name, kind: kindAgent, agent: f}
}
func flagField(name string, f func(*ddl.Agent) bool) field {
	return field{name: name, kind: kindBool, flag: f}
}
func intField(name string, f func(*event.Event) int64) field {
	return field{name: name, kind: kindInt, num: f}
}

// fields lists every variable; its order is the activation's slot order.
var fields = []field{
	strField("kind", func(e *event.Event) string { return string(e.Kind) }),
	strField("tenant", func(e *event.Event) string { return e.Tenant }),
	strField("instance", func(e *event.Event) string { return e.Instance }),
	strField("epoch", func(e *event.Event) string { return e.Epoch }),
	intField("seq", func(e *event.Event) int64 { return int64(min(e.Seq, 1<<63-1)) }),
	{name: "time", kind: kindTime, tm: func(e *event.Event) time.Time { return e.Time }},
	strField("id", func(e *event.Event) string { return e.ID }),
	strField("request_id", func(e *event.Event) string { return e.RequestID }),

	strField("subject", func(e *event.Event) string { return ident(e).Subject }),
	strField("principal", func(e *event.Event) string { return ident(e).Subject }),
	strField("issuer", func(e *event.Event) string { return ident(e).Issuer }),
	strField("spiffe_id", func(e *event.Event) string { return ident(e).SPIFFEID }),
	strField("actor", func(e *event.Event) string { return e.Identity.CurrentActor() }),
	{name: "chain", kind: kindList, list: chainOf},
	intField("chain_depth", func(e *event.Event) int64 { return int64(len(ident(e).Chain)) }),
	strField("session", func(e *event.Event) string { return ident(e).SessionID }),
	strField("session_id", func(e *event.Event) string { return ident(e).SessionID }),
	strField("task", func(e *event.Event) string { return ident(e).TaskID }),
	strField("task_id", func(e *event.Event) string { return ident(e).TaskID }),
	strField("session_source", func(e *event.Event) string { return ident(e).SessionSource }),
	strField("task_source", func(e *event.Event) string { return ident(e).TaskSource }),

	strField("method", func(e *event.Event) string { return req(e).Method }),
	strField("host", func(e *event.Event) string { return req(e).Host }),
	strField("path", func(e *event.Event) string { return req(e).Path }),
	strField("query", func(e *event.Event) string { return req(e).Query }),
	{name: "headers", kind: kindStringMap, smap: func(e *event.Event) map[string]string { return req(e).Headers }},
	strField("rpc_method", func(e *event.Event) string { return req(e).RPCMethod }),
	strField("rpc_kind", func(e *event.Event) string { return req(e).RPCKind }),
	strField("tool", func(e *event.Event) string { return req(e).Tool }),
	strField("prompt", func(e *event.Event) string { return req(e).Prompt }),
	strField("resource", func(e *event.Event) string { return req(e).Resource }),
	strField("args_digest", func(e *event.Event) string { return req(e).ArgsDigest }),
	{name: "args", kind: kindMap},
	intField("body_bytes", func(e *event.Event) int64 { return req(e).BodyBytes }),
	strField("destination", func(e *event.Event) string { return req(e).Destination }),
	strField("data_class", func(e *event.Event) string { return req(e).DataClass }),
	{name: "truncated", kind: kindList, list: func(e *event.Event) []string { return req(e).Truncated }},

	strField("effect", func(e *event.Event) string { return string(dec(e).Effect) }),
	strField("policy_id", func(e *event.Event) string { return dec(e).PolicyID }),
	strField("policy_hash", func(e *event.Event) string { return dec(e).PolicyHash }),
	strField("rule_id", func(e *event.Event) string { return dec(e).RuleID }),
	strField("code", func(e *event.Event) string { return dec(e).Code }),
	strField("reason", func(e *event.Event) string { return dec(e).Reason }),
	{name: "shadow", kind: kindList, list: func(e *event.Event) []string { return dec(e).Shadow }},

	intField("status", func(e *event.Event) int64 { return int64(resp(e).Status) }),
	strField("outcome", func(e *event.Event) string { return resp(e).Outcome }),
	intField("duration_ns", func(e *event.Event) int64 { return resp(e).DurationNs }),
	intField("response_bytes", func(e *event.Event) int64 { return resp(e).Bytes }),

	{name: "unrecorded", kind: kindIntList, nums: func(e *event.Event) []uint64 {
		if e.Checkpoint == nil {
			return nil
		}
		return e.Checkpoint.Unrecorded
	}},

	// Credentials: the jti an event is about (the one a decision put on
	// its request, a credential event's own, the one a backend was shown)
	// and, of a credential event, what happened to it.
	strField("credential_jti", credentialJTI),
	strField("credential_action", func(e *event.Event) string {
		if e.Credential == nil {
			return ""
		}
		return string(e.Credential.Action)
	}),
	// credential_expires is a credential event's exp; the zero time
	// (0001-01-01) of any other event.
	{name: "credential_expires", kind: kindTime, tm: func(e *event.Event) time.Time {
		if e.Credential == nil {
			return time.Time{}
		}
		return e.Credential.Expires
	}},

	// What a verifying backend saw (kind backend_request). backend_peer
	// is the workload that called it: its SPIFFE id over mTLS, else its
	// address without the port, so one workload's connections are one.
	intField("backend_status", func(e *event.Event) int64 { return int64(backend(e).Status) }),
	strField("backend_code", func(e *event.Event) string { return backend(e).Code }),
	strField("backend_audience", func(e *event.Event) string { return backend(e).Audience }),
	strField("backend_client", func(e *event.Event) string { return backend(e).Client }),
	strField("backend_peer", backendPeer),

	strField("alert_rule_id", func(e *event.Event) string { return alert(e).RuleID }),
	strField("alert_title", func(e *event.Event) string { return alert(e).Title }),
	strField("alert_severity", func(e *event.Event) string { return string(alert(e).Severity) }),
	{name: "alert_tags", kind: kindList, list: func(e *event.Event) []string { return alert(e).Tags }},
	intField("alert_count", func(e *event.Event) int64 { return int64(alert(e).Count) }),

	// What the agent inventory says of the event's agent: not part of
	// the event, given beside it (Engine.ObserveAgent). inventory_loaded
	// is whether one was consulted at all; without one no agent is
	// registered, and none is unregistered either.
	agentField("agent_owner", func(a *ddl.Agent) string { return a.Owner }),
	agentField("agent_team", func(a *ddl.Agent) string { return a.Team }),
	agentField("agent_purpose", func(a *ddl.Agent) string { return a.Purpose }),
	agentField("agent_risk_tier", func(a *ddl.Agent) string { return a.RiskTier }),
	agentField("agent_environment", func(a *ddl.Agent) string { return a.Environment }),
	flagField("agent_registered", func(a *ddl.Agent) bool { return a.Registered }),
	flagField("inventory_loaded", func(a *ddl.Agent) bool { return a.Inventory != "" }),
}

func backend(e *event.Event) *event.Backend {
	if e.Backend == nil {
		return &noBackend
	}
	return e.Backend
}

var noBackend event.Backend

func credentialJTI(e *event.Event) string {
	switch {
	case e.Backend != nil:
		return e.Backend.JTI
	case e.Credential != nil:
		return e.Credential.JTI
	}
	return dec(e).CredentialJTI
}

func backendPeer(e *event.Event) string {
	if e.Kind != event.KindBackendRequest {
		return ""
	}
	if id := ident(e).SPIFFEID; id != "" {
		return id
	}
	c := backend(e).Client
	if host, _, err := net.SplitHostPort(c); err == nil {
		return host
	}
	return c
}

func chainOf(e *event.Event) []string {
	c := ident(e).Chain
	if len(c) == 0 {
		return nil
	}
	out := make([]string, len(c))
	for i, a := range c {
		out[i] = a.Subject
	}
	return out
}

// fieldIndex maps a variable name to its slot in fields.
var fieldIndex = func() map[string]int {
	m := make(map[string]int, len(fields))
	for i, f := range fields {
		m[f.name] = i
	}
	return m
}()

// nameSlots is a direct-mapped index of the field names, by nameHash:
// CEL resolves every variable by name on every evaluation, and a hash
// map's lookup was a sixth of the engine's time. -1: no field there;
// -2: two names share the slot, ask fieldIndex.
var nameSlots = func() (t [512]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, f := range fields {
		h := nameHash(f.name)
		if t[h] == -1 {
			t[h] = int8(i)
		} else {
			t[h] = -2
		}
	}
	return t
}()

func nameHash(s string) int {
	if s == "" {
		return 0
	}
	return (len(s)*37 + int(s[0])*11 + int(s[len(s)-1])*3 + int(s[len(s)/2])) & 511
}

// lookupField returns the slot of a variable name.
func lookupField(name string) (int, bool) {
	switch i := nameSlots[nameHash(name)]; {
	case i >= 0:
		return int(i), fields[i].name == name
	case i == -1:
		return 0, false
	}
	i, ok := fieldIndex[name]
	return i, ok
}

// scalarField returns the field name as group_by and value fields read
// it: strings as they are, ints in decimal. Lists, maps and time are not
// scalar, and a group of them would be ambiguous.
func scalarField(name string) (func(*activation) string, bool) {
	i, ok := fieldIndex[name]
	if !ok {
		return nil, false
	}
	f := fields[i]
	switch f.kind {
	case kindString:
		return func(a *activation) string { return f.str(a.ev) }, true
	case kindInt:
		return func(a *activation) string { return strconv.FormatInt(f.num(a.ev), 10) }, true
	case kindAgent:
		return func(a *activation) string { return f.agent(&a.agent) }, true
	}
	return nil, false
}

// celVariables declares every field to the CEL environment.
func celVariables() []cel.EnvOption {
	opts := make([]cel.EnvOption, 0, len(fields))
	for _, f := range fields {
		var t *cel.Type
		switch f.kind {
		case kindString:
			t = cel.StringType
		case kindInt:
			t = cel.IntType
		case kindList:
			t = cel.ListType(cel.StringType)
		case kindIntList:
			t = cel.ListType(cel.IntType)
		case kindMap:
			t = cel.MapType(cel.StringType, cel.DynType)
		case kindStringMap:
			t = cel.MapType(cel.StringType, cel.StringType)
		case kindTime:
			t = cel.TimestampType
		case kindAgent:
			t = cel.StringType
		case kindBool:
			t = cel.BoolType
		}
		opts = append(opts, cel.Variable(f.name, t))
	}
	return opts
}

var (
	emptyList      = types.NewStringList(types.DefaultTypeAdapter, []string{})
	emptyMap       = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})
	emptyStringMap = types.NewStringStringMap(types.DefaultTypeAdapter, map[string]string{})
	emptyString    = types.String("")
)

// activation resolves the variables of one event. Each is converted to
// its CEL value on first use and shared by every rule that reads it; the
// engine reuses one activation for all events.
type activation struct {
	ev    *event.Event
	agent ddl.Agent // the inventory's answer for ev
	kind  kindMask
	vals  []celref.Val
}

func newActivation() *activation { return &activation{vals: make([]celref.Val, len(fields))} }

func (a *activation) reset(ev *event.Event) {
	a.ev, a.agent = ev, ddl.Agent{}
	if ev != nil {
		a.kind = kindBit(ev.Kind)
	}
	clear(a.vals)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i, ok := lookupField(name)
	if !ok {
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	v := a.value(i)
	a.vals[i] = v
	return v, true
}

func (a *activation) value(i int) celref.Val {
	f, e := &fields[i], a.ev
	switch f.kind {
	case kindString:
		if s := f.str(e); s != "" {
			return types.String(s)
		}
		return emptyString
	case kindInt:
		return types.Int(f.num(e))
	case kindList:
		if l := f.list(e); len(l) > 0 {
			return types.NewStringList(types.DefaultTypeAdapter, l)
		}
		return emptyList
	case kindIntList:
		l := f.nums(e)
		vals := make([]celref.Val, len(l))
		for i, n := range l {
			vals[i] = types.Int(int64(min(n, 1<<63-1)))
		}
		return types.NewRefValList(types.DefaultTypeAdapter, vals)
	case kindStringMap:
		if m := f.smap(e); len(m) > 0 {
			return types.NewStringStringMap(types.DefaultTypeAdapter, m)
		}
		return emptyStringMap
	case kindTime:
		return types.Timestamp{Time: f.tm(e)}
	case kindAgent:
		if s := f.agent(&a.agent); s != "" {
			return types.String(s)
		}
		return emptyString
	case kindBool:
		return types.Bool(f.flag(&a.agent))
	case kindMap:
		raw := req(e).Args
		if len(raw) == 0 {
			return emptyMap
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			// Arguments that are not a JSON object: an error, so a
			// rule on args fails (no match, counted) rather than
			// reading an empty map as "no such argument".
			return types.NewErr("args are not a JSON object")
		}
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
	}
	return types.NewErr("unknown variable %q", f.name)
}

// text is field i's value as an equality prefilter compares it: strings
// as they are, bools as "true" or "false".
func (a *activation) text(i int) string {
	f := &fields[i]
	switch f.kind {
	case kindString:
		return f.str(a.ev)
	case kindAgent:
		return f.agent(&a.agent)
	case kindBool:
		return strconv.FormatBool(f.flag(&a.agent))
	}
	return ""
}

// Parent implements interpreter.Activation.
func (*activation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*activation)(nil)
