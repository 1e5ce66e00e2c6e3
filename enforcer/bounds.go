package enforcer

import (
	"unicode/utf8"

	"github.com/rampart-io/rampart/schema/event"
)

// Bounds of what a record keeps of client-chosen values. A tool name or
// an argument can be as long as the body (1 MiB by default), and escaped
// for JSON six times that: an event that large would not fit a JetStream
// message, and a request that cannot be recorded is refused unrecorded.
// Longer values are cut and named in Request.Truncated; ArgsDigest still
// covers the arguments whole.
const (
	maxRecordedString = 4 << 10  // names, URIs, methods, one header value, a reason
	maxRecordedPath   = 8 << 10  // path and query
	maxRecordedArgs   = 64 << 10 // recorded arguments, dropped beyond
)

// boundRecord cuts the client-chosen fields of r and d to what a record
// keeps, naming each it cut in r.Truncated. Policy has decided on the
// values whole.
func boundRecord(r *event.Request, d *event.Decision) {
	cut := func(name string, s *string, limit int) {
		if len(*s) > limit {
			*s = truncateUTF8(*s, limit)
			r.Truncated = append(r.Truncated, name)
		}
	}
	cut("method", &r.Method, maxRecordedString)
	cut("host", &r.Host, maxRecordedString)
	cut("path", &r.Path, maxRecordedPath)
	cut("query", &r.Query, maxRecordedPath)
	cut("resource", &r.Resource, maxRecordedString)
	cut("rpc_method", &r.RPCMethod, maxRecordedString)
	cut("tool", &r.Tool, maxRecordedString)
	cut("prompt", &r.Prompt, maxRecordedString)
	for k, v := range r.Headers {
		if len(v) > maxRecordedString {
			r.Headers[k] = truncateUTF8(v, maxRecordedString)
			r.Truncated = append(r.Truncated, "headers."+k)
		}
	}
	if len(r.Args) > maxRecordedArgs {
		r.Args = nil
		r.Truncated = append(r.Truncated, "args")
	}
	if d != nil && len(d.Reason) > maxRecordedString {
		d.Reason = truncateUTF8(d.Reason, maxRecordedString)
		r.Truncated = append(r.Truncated, "reason")
	}
}

// truncateUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
