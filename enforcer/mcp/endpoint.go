package mcp

import (
	"fmt"
	"net/http"
	"path"
	"strings"
)

// Endpoints says which request paths are MCP endpoints, where only
// well-formed MCP requests are accepted. The zero value means the
// default.
type Endpoints struct {
	// Paths are the path prefixes of the upstream's MCP endpoints: "/mcp"
	// is /mcp and everything under /mcp/. There a request must be a POST
	// whose body is one JSON-RPC message, or a GET (the server's event
	// stream) or a DELETE (the end of a session) without a body; anything
	// else is refused before policy (a mode that sees no body, as behind
	// nginx's auth_request, checks the method only). Elsewhere a body that
	// a JSON decoder reads as an object or array is still parsed as
	// JSON-RPC whatever the method, and other bodies are plain HTTP for
	// policy to decide on.
	// Default ["/"]: every path, so that nothing reaches an MCP server
	// undecided unless the operator has said where else the upstream
	// serves plain HTTP.
	Paths []string `yaml:"paths"`
}

// SetDefaults fills the unset fields of e.
func (e *Endpoints) SetDefaults() {
	if len(e.Paths) == 0 {
		e.Paths = []string{"/"}
	}
}

// Validate reports the first unusable path.
func (e *Endpoints) Validate() error {
	for _, p := range e.Paths {
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if !strings.HasPrefix(p, "/") || clean != p {
			return fmt.Errorf("mcp: paths: %q is not an absolute, canonical path", p)
		}
	}
	return nil
}

// Match reports whether urlPath, which the enforcer has checked is
// canonical, is an MCP endpoint's.
func (e *Endpoints) Match(urlPath string) bool {
	if urlPath == "" {
		urlPath = "/"
	}
	for _, p := range e.Paths {
		if urlPath == p || strings.HasPrefix(urlPath, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// EndpointMethods are the HTTP methods of MCP's Streamable HTTP transport,
// as an Allow header lists them: POST carries a message, GET opens the
// server's event stream, DELETE ends a session.
const EndpointMethods = "POST, GET, DELETE"

// EndpointMethod reports whether method is one of EndpointMethods.
func EndpointMethod(method string) bool {
	switch method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
		return true
	}
	return false
}
