package policy

import "github.com/google/cel-go/interpreter"

// Input is what rules see of a request; each field is the CEL variable
// named in its comment. Unset strings are "".
type Input struct {
	Tenant   string   // tenant
	Subject  string   // subject: the principal (token sub)
	Actor    string   // actor: the current actor, the subject when nothing was delegated
	Chain    []string // chain: delegation chain, earliest actor first
	SPIFFEID string   // spiffe_id
	Session  string   // session
	Task     string   // task

	Method    string         // method: HTTP method
	Host      string         // host
	Path      string         // path
	RPCMethod string         // rpc_method: JSON-RPC method, "" for plain HTTP
	Tool      string         // tool: tools/call name, "" otherwise
	Args      map[string]any // args: tool arguments, empty when none
}

// activation resolves CEL variables straight from the Input, without
// building a map per request.
type activation struct{ in *Input }

func (in *Input) activation() interpreter.Activation { return activation{in} }

func (a activation) ResolveName(name string) (any, bool) {
	in := a.in
	switch name {
	case "tenant":
		return in.Tenant, true
	case "subject":
		return in.Subject, true
	case "actor":
		return in.Actor, true
	case "chain":
		if in.Chain == nil {
			return []string{}, true
		}
		return in.Chain, true
	case "chain_depth":
		return int64(len(in.Chain)), true
	case "spiffe_id":
		return in.SPIFFEID, true
	case "session":
		return in.Session, true
	case "task":
		return in.Task, true
	case "method":
		return in.Method, true
	case "host":
		return in.Host, true
	case "path":
		return in.Path, true
	case "rpc_method":
		return in.RPCMethod, true
	case "tool":
		return in.Tool, true
	case "args":
		if in.Args == nil {
			return map[string]any{}, true
		}
		return in.Args, true
	}
	return nil, false
}

func (activation) Parent() interpreter.Activation { return nil }
