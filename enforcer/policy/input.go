package policy

import (
	"sync"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Input is what rules see of a request; each field is the CEL variable
// named in its tag. Unset strings are "". The json/yaml names are those of
// fixture files and of `rampart policy eval -input`.
type Input struct {
	Tenant   string   `json:"tenant,omitempty" yaml:"tenant"`
	Subject  string   `json:"subject,omitempty" yaml:"subject"`     // the principal (token sub)
	Actor    string   `json:"actor,omitempty" yaml:"actor"`         // the current actor; the subject when nothing was delegated
	Chain    []string `json:"chain,omitempty" yaml:"chain"`         // delegation chain, earliest actor first; chain_depth is its length
	SPIFFEID string   `json:"spiffe_id,omitempty" yaml:"spiffe_id"` // the workload's SPIFFE ID
	Issuer   string   `json:"issuer,omitempty" yaml:"issuer"`       // the token's issuer
	Session  string   `json:"session,omitempty" yaml:"session"`
	// Task is the task id, task.id in CEL.
	Task string `json:"task,omitempty" yaml:"task"`
	// TaskScope is what the task was declared for; nil when it was not
	// (or there is no task). See Task for the CEL variable.
	TaskScope *TaskScope `json:"task_scope,omitempty" yaml:"task_scope"`
	// SessionSource and TaskSource say where Session and Task came from:
	// "token", "server" (issued by the backend to this caller) or "client"
	// (first presented by this caller); "" when there is none.
	SessionSource string `json:"session_source,omitempty" yaml:"session_source"`
	TaskSource    string `json:"task_source,omitempty" yaml:"task_source"`

	Method string `json:"method,omitempty" yaml:"method"` // HTTP method
	Host   string `json:"host,omitempty" yaml:"host"`
	Path   string `json:"path,omitempty" yaml:"path"`
	Query  string `json:"query,omitempty" yaml:"query"` // the raw query string
	// Headers are the recorded request headers (record_headers), by
	// lower-case name.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers"`

	// RPCKind is what the JSON-RPC message is: "request", "notification",
	// "response" (a client's answer to a request the server sent it, as
	// in sampling and elicitation), or "" for plain HTTP.
	RPCKind string `json:"rpc_kind,omitempty" yaml:"rpc_kind"`
	// RPCMethod is the JSON-RPC method of a request or notification; ""
	// for a response and for plain HTTP.
	RPCMethod string `json:"rpc_method,omitempty" yaml:"rpc_method"`
	// Tool is the name of a tools/call and "" for every other message, so
	// a rule on tool never matches a prompt or a resource.
	Tool string `json:"tool,omitempty" yaml:"tool"`
	// Prompt is the name of a prompts/get, or of the prompt a
	// completion/complete completes an argument of; "" otherwise.
	Prompt string `json:"prompt,omitempty" yaml:"prompt"`
	// Resource is the URI of a resources/read, subscribe or unsubscribe,
	// or of the resource template a completion/complete completes; ""
	// otherwise.
	Resource string `json:"resource,omitempty" yaml:"resource"`
	// Args are the arguments of a tools/call or prompts/get; empty when
	// there are none.
	Args map[string]any `json:"args,omitempty" yaml:"args"`

	// Destination is where the call reaches out to, as the gateway or the
	// tool's adapter classified it (a host, "internal", "internet", ...).
	Destination string `json:"destination,omitempty" yaml:"destination"`
	// DataClass is the sensitivity of the data involved ("public",
	// "confidential", "pii", ...), as classified before the decision.
	DataClass string `json:"data_class,omitempty" yaml:"data_class"`

	// Now is the CEL variable now; zero means the time of the decision.
	// Fixtures set it to make time-dependent rules reproducible.
	Now time.Time `json:"now,omitzero" yaml:"now"`
}

// The CEL variables, in the order of activation.vals.
const (
	varTenant = iota
	varSubject
	varActor
	varChain
	varChainDepth
	varSPIFFEID
	varIssuer
	varSession
	varTask
	varSessionSource
	varTaskSource
	varMethod
	varHost
	varPath
	varQuery
	varResource
	varHeaders
	varRPCKind
	varRPCMethod
	varTool
	varPrompt
	varArgs
	varDestination
	varDataClass
	varNow
	numVars
)

// activation resolves CEL variables from an Input. Each variable is
// converted to its CEL value once per request, on first use, and shared by
// every rule that reads it: converting per rule was most of the cost of a
// decision. Activations are pooled.
type activation struct {
	in   *Input
	now  time.Time
	vals [numVars]ref.Val
}

var activations = sync.Pool{New: func() any { return new(activation) }}

func newActivation(in *Input, now time.Time) *activation {
	a := activations.Get().(*activation)
	a.in, a.now = in, now
	return a
}

func (a *activation) release() {
	*a = activation{}
	activations.Put(a)
}

// varIndex maps a CEL variable name to its slot.
func varIndex(name string) int {
	switch name {
	case "tenant":
		return varTenant
	case "subject":
		return varSubject
	case "actor":
		return varActor
	case "chain":
		return varChain
	case "chain_depth":
		return varChainDepth
	case "spiffe_id":
		return varSPIFFEID
	case "issuer":
		return varIssuer
	case "session":
		return varSession
	case "task":
		return varTask
	case "session_source":
		return varSessionSource
	case "task_source":
		return varTaskSource
	case "method":
		return varMethod
	case "host":
		return varHost
	case "path":
		return varPath
	case "query":
		return varQuery
	case "resource":
		return varResource
	case "headers":
		return varHeaders
	case "rpc_kind":
		return varRPCKind
	case "rpc_method":
		return varRPCMethod
	case "tool":
		return varTool
	case "prompt":
		return varPrompt
	case "args":
		return varArgs
	case "destination":
		return varDestination
	case "data_class":
		return varDataClass
	case "now":
		return varNow
	}
	return -1
}

var emptyArgs = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})
var emptyChain = types.NewStringList(types.DefaultTypeAdapter, []string{})
var emptyHeaders = types.NewStringStringMap(types.DefaultTypeAdapter, map[string]string{})

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i := varIndex(name)
	if i < 0 {
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	v := a.value(i)
	a.vals[i] = v
	return v, true
}

func (a *activation) value(i int) ref.Val {
	in := a.in
	switch i {
	case varTenant:
		return types.String(in.Tenant)
	case varSubject:
		return types.String(in.Subject)
	case varActor:
		return types.String(in.Actor)
	case varChain:
		if len(in.Chain) == 0 {
			return emptyChain
		}
		return types.NewStringList(types.DefaultTypeAdapter, in.Chain)
	case varChainDepth:
		return types.Int(len(in.Chain))
	case varSPIFFEID:
		return types.String(in.SPIFFEID)
	case varIssuer:
		return types.String(in.Issuer)
	case varSession:
		return types.String(in.Session)
	case varTask:
		return taskAdapter().NativeToValue(taskOf(in))
	case varSessionSource:
		return types.String(in.SessionSource)
	case varTaskSource:
		return types.String(in.TaskSource)
	case varMethod:
		return types.String(in.Method)
	case varHost:
		return types.String(in.Host)
	case varPath:
		return types.String(in.Path)
	case varQuery:
		return types.String(in.Query)
	case varResource:
		return types.String(in.Resource)
	case varHeaders:
		if len(in.Headers) == 0 {
			return emptyHeaders
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, in.Headers)
	case varRPCKind:
		return types.String(in.RPCKind)
	case varRPCMethod:
		return types.String(in.RPCMethod)
	case varTool:
		return types.String(in.Tool)
	case varPrompt:
		return types.String(in.Prompt)
	case varArgs:
		if len(in.Args) == 0 {
			return emptyArgs
		}
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, in.Args)
	case varDestination:
		return types.String(in.Destination)
	case varDataClass:
		return types.String(in.DataClass)
	case varNow:
		return types.Timestamp{Time: a.now}
	}
	return types.NewErr("unknown variable %d", i)
}

// Parent implements interpreter.Activation.
func (*activation) Parent() interpreter.Activation { return nil }

var _ interpreter.Activation = (*activation)(nil)
