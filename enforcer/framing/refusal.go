package framing

import (
	"bytes"
	"net"
	"net/http"
)

// Code is the stable name of a refusal: the server behind the listener
// answers and records it under this name.
type Code string

// Codes of the requests the check refuses.
const (
	// Malformed refuses a request whose framing is ambiguous or invalid
	// (Content-Length with Transfer-Encoding, repeated Content-Length,
	// folded headers, bare LF): the shapes of request smuggling.
	Malformed Code = "request_malformed"
	// HeadersTooLarge refuses a header block over Options.MaxHeaderBytes,
	// or trailers over their bound: a request the check cannot follow.
	HeadersTooLarge Code = "headers_too_large"
)

// Status is the HTTP status c is answered with.
func (c Code) Status() int {
	if c == HeadersTooLarge {
		return http.StatusRequestHeaderFieldsTooLarge
	}
	return http.StatusBadRequest
}

// MaxRecorded bounds Refusal.Method and Refusal.Target.
const MaxRecorded = 256

// Refusal is a request refused by the check: why, and what of it can be
// recorded safely. Header values are not kept (they may carry
// credentials); method and target come from the request line as far as
// it was read, bytes other than visible ASCII escaped as %XX.
type Refusal struct {
	Code   Code
	Reason string   // what was wrong, for the record
	Remote net.Addr // the peer
	// Request is the refused request's place on the connection, from 1.
	Request int
	Method  string
	Target  string // the request-target as sent, path and query
	// Truncated reports that Method or Target was cut: at MaxRecorded
	// bytes, or where the request line stopped.
	Truncated bool
}

// Error makes r the error that the refused connection's Read returns.
func (r *Refusal) Error() string { return "framing: " + string(r.Code) + ": " + r.Reason }

// recordable is what may be recorded of the request line at the start
// of block, which may stop before the line ends.
func recordable(block []byte) (method, target string, truncated bool) {
	line, _, complete := bytes.Cut(block, crlf)
	m, rest, sawTarget := bytes.Cut(line, []byte(" "))
	t, _, sawVersion := bytes.Cut(rest, []byte(" "))
	method, cutM := escape(m)
	target, cutT := escape(t)
	return method, target, cutM || cutT || !complete && !sawTarget || !complete && !sawVersion
}

// escape is b with bytes other than visible ASCII as %XX, cut at
// MaxRecorded bytes.
func escape(b []byte) (s string, cut bool) {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, min(len(b), MaxRecorded))
	for _, c := range b {
		if c > ' ' && c < 0x7f {
			if len(out)+1 > MaxRecorded {
				return string(out), true
			}
			out = append(out, c)
			continue
		}
		if len(out)+3 > MaxRecorded {
			return string(out), true
		}
		out = append(out, '%', hex[c>>4], hex[c&15])
	}
	return string(out), false
}
