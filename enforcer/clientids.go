package enforcer

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-io/rampart/enforcer/binding"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// maxClientID bounds a session or task id a client sends. MCP session ids
// are visible ASCII (0x21-0x7E); task ids are held to the same.
const maxClientID = 128

// bindClientIDs binds the session and task ids the client sent in headers
// to the caller, and takes them as the identity's when its token has none.
// An id another principal holds is refused: with it the caller would act,
// and be recorded, inside someone else's session or task.
//
// When the token names its own session and the client sends another id
// in the header, the backend acts in the header's: the record keeps it
// among the request's headers (lower-case name), beside the token's. A
// task header naming another task than the token's is refused
// (task_mismatch): the task is charged, checked and ended as one.
func (e *Enforcer) bindClientIDs(h http.Header, id *identity.Identity, x *exchange) (Code, error) {
	req := x.request
	if id.SessionID != "" {
		id.SessionSource = string(binding.Token)
	}
	if id.TaskID != "" {
		id.TaskSource = string(binding.Token)
	}
	p := principalOf(id)
	now := time.Now()
	for _, b := range []struct {
		kind     binding.Kind
		header   string
		id, src  *string
		code     Code
		nickname string
	}{
		{binding.Session, e.cfg.Identity.SessionHeader, &id.SessionID, &id.SessionSource, CodeSessionForeign, "session"},
		{binding.Task, e.cfg.Identity.TaskHeader, &id.TaskID, &id.TaskSource, CodeTaskForeign, "task"},
	} {
		v, err := clientID(h, b.header)
		if err != nil {
			return CodeClientIDInvalid, err
		}
		if v == "" {
			continue
		}
		if b.kind == binding.Session {
			x.mcpSession = v
		}
		if b.kind == binding.Task && *b.id != "" && *b.id != v {
			// The token's task would be charged and checked, the header's
			// acted in: refuse rather than choose.
			return CodeTaskMismatch, fmt.Errorf("token task %q, %s %q", *b.id, b.header, v)
		}
		if b.kind == binding.Task {
			if rec, ok := e.tasks.View(id.Tenant, v); ok && rec.Declared {
				// A declared task says itself who may act in it (taskGate):
				// its subjects share it, whoever presented it first.
				if *b.id == "" {
					*b.id, *b.src = v, string(binding.Client)
				}
				continue
			}
		}
		out, src := e.bindings.Claim(b.kind, v, p, now)
		if out == binding.Foreign {
			return b.code, fmt.Errorf("%s %q is held by another principal", b.nickname, v)
		}
		switch {
		case *b.id == "":
			*b.id, *b.src = v, string(src)
		case *b.id != v:
			if req.Headers == nil {
				req.Headers = map[string]string{}
			}
			req.Headers[strings.ToLower(b.header)] = v
		}
	}
	return "", nil
}

// clientID reads the id in header name: absent is "", and more than one,
// or one that is not 1-128 visible ASCII characters, an error.
func clientID(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%d %s headers", len(vs), name)
	}
	v := vs[0]
	if len(v) == 0 || len(v) > maxClientID {
		return "", fmt.Errorf("%s of %d bytes: want 1 to %d", name, len(v), maxClientID)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", fmt.Errorf("%s holds byte %#x: want visible ASCII", name, v[i])
		}
	}
	return v, nil
}

func principalOf(id *identity.Identity) binding.Principal {
	return binding.Principal{Tenant: id.Tenant, Issuer: id.Issuer, Subject: id.Subject}
}

// issueSession binds the session id a backend's answer issues (MCP's
// Mcp-Session-Id on initialize) to the caller it answers, before the
// caller can present it. It reports false when another principal holds the
// id, and the answer must not reach the caller.
func (e *Enforcer) issueSession(x *exchange, resp *http.Response) bool {
	v, err := clientID(resp.Header, e.cfg.Identity.SessionHeader)
	if v == "" || err != nil || x.ident == nil {
		return true // no session issued, or one no client could send back
	}
	return e.bindings.Issue(binding.Session, v, principalOf(x.ident), time.Now())
}

// releaseSession ends the caller's binding of the session a DELETE ended.
func (e *Enforcer) releaseSession(x *exchange, h http.Header) {
	if v, err := clientID(h, e.cfg.Identity.SessionHeader); v != "" && err == nil && x.ident != nil {
		e.bindings.Release(binding.Session, v, principalOf(x.ident))
	}
}
