// Package toolserver is a sample MCP tool backend: JSON-RPC 2.0 over HTTP
// with a few tools. It stands behind the enforcer in the demo and tests,
// and keeps its own log of the request ids it served, so tests can check
// that every request the backend saw was recorded as allowed.
package toolserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// Tools lists the tools the server offers.
var Tools = []string{"search", "read_file", "send_email", "shell", "delete_records"}

// Server is the tool backend.
type Server struct {
	mu   sync.Mutex
	seen []string
	auth map[string]string // Authorization by request id
}

// Authorization returns the Authorization header the request with the
// given X-Rampart-Request-Id arrived with: what the backend was handed.
func (s *Server) Authorization(requestID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth[requestID]
}

// Seen returns the X-Rampart-Request-Id of every request served, in order.
func (s *Server) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	} `json:"params"`
}

// ServeHTTP answers one JSON-RPC request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	id := r.Header.Get("X-Rampart-Request-Id")
	s.seen = append(s.seen, id)
	if s.auth == nil {
		s.auth = map[string]string{}
	}
	s.auth[id] = r.Header.Get("Authorization")
	s.mu.Unlock()

	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req rpcRequest
	if err != nil || json.Unmarshal(body, &req) != nil {
		writeRPC(w, nil, nil, &rpcError{Code: -32700, Message: "parse error"})
		return
	}
	switch req.Method {
	case "tools/list":
		list := make([]map[string]any, len(Tools))
		for i, t := range Tools {
			list[i] = map[string]any{"name": t, "inputSchema": map[string]any{"type": "object"}}
		}
		writeRPC(w, req.ID, map[string]any{"tools": list}, nil)
	case "tools/call":
		text := fmt.Sprintf("%s done with %d argument(s)", req.Params.Name, len(req.Params.Arguments))
		writeRPC(w, req.ID, map[string]any{"content": []map[string]any{{"type": "text", "text": text}}}, nil)
	default:
		writeRPC(w, req.ID, nil, &rpcError{Code: -32601, Message: "method not found"})
	}
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeRPC(w http.ResponseWriter, id json.RawMessage, result any, e *rpcError) {
	if id == nil {
		id = json.RawMessage("null")
	}
	w.Header().Set("Content-Type", "application/json")
	msg := map[string]any{"jsonrpc": "2.0", "id": id}
	if e != nil {
		msg["error"] = e
	} else {
		msg["result"] = result
	}
	_ = json.NewEncoder(w).Encode(msg)
}
