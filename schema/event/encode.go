package event

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Encode returns the wire form of e: exactly the bytes json.Marshal(e)
// gives (FuzzEncode holds it to that), written without reflection since
// every request the enforcer decides costs two or three events.
func Encode(e *Event) ([]byte, error) {
	return appendEvent(make([]byte, 0, 1024), e)
}

// appendEvent appends the wire form of e to b.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	// Alerts, credential and backend events take the general path.
	if plainTime(e.Time) && e.Alert == nil && e.Credential == nil && e.Backend == nil {
		w := encoder{b: b}
		w.event(e)
		if !w.invalidArgs {
			return w.b, nil
		}
	}
	// The time or the arguments are ones only json.Marshal can judge: its
	// bytes, or its error.
	data, err := json.Marshal(e)
	if err != nil {
		return b, err
	}
	return append(b, data...), nil
}

// plainTime reports whether t's RFC 3339 form is one time.Time's
// MarshalJSON accepts: a four-digit year and an offset in whole minutes.
func plainTime(t time.Time) bool {
	_, offset := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && offset%60 == 0 && offset > -24*3600 && offset < 24*3600
}

// encoder appends JSON to b in the field order and with the omission
// rules of the struct tags.
type encoder struct {
	b           []byte
	comma       bool // a member precedes: the next needs a comma
	invalidArgs bool // Request.Args is not JSON
}

func (w *encoder) open() { w.b, w.comma = append(w.b, '{'), false }

func (w *encoder) close() { w.b, w.comma = append(w.b, '}'), true }

// sep separates array element i from the one before it.
func (w *encoder) sep(i int) {
	if i > 0 {
		w.b = append(w.b, ',')
	}
}

// key starts member name; names are plain ASCII, written as they are.
func (w *encoder) key(name string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
	w.comma = true
}

func (w *encoder) str(name, v string) {
	w.key(name)
	w.b = appendString(w.b, v)
}

// optStr is a string member tagged omitempty.
func (w *encoder) optStr(name, v string) {
	if v != "" {
		w.str(name, v)
	}
}

func (w *encoder) int(name string, v int64) {
	w.key(name)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *encoder) strs(name string, vs []string) {
	w.key(name)
	w.b = append(w.b, '[')
	for i, v := range vs {
		w.sep(i)
		w.b = appendString(w.b, v)
	}
	w.b = append(w.b, ']')
}

func (w *encoder) event(e *Event) {
	w.open()
	w.int("v", int64(e.V))
	w.str("id", e.ID)
	w.str("kind", string(e.Kind))
	w.key("time")
	w.b = append(w.b, '"')
	w.b = e.Time.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
	w.str("tenant", e.Tenant)
	w.str("instance", e.Instance)
	w.key("seq")
	w.b = strconv.AppendUint(w.b, e.Seq, 10)
	w.optStr("epoch", e.Epoch)
	w.optStr("prev", e.Prev)
	w.str("request_id", e.RequestID)
	if e.Trace != (Trace{}) {
		w.key("trace")
		w.open()
		w.optStr("traceparent", e.Trace.TraceParent)
		w.optStr("tracestate", e.Trace.TraceState)
		w.close()
	}
	if id := e.Identity; id != nil {
		w.key("identity")
		w.identity(id)
	}
	if r := e.Request; r != nil {
		w.key("request")
		w.request(r)
	}
	if d := e.Decision; d != nil {
		w.key("decision")
		w.open()
		w.str("effect", string(d.Effect))
		w.str("policy_id", d.PolicyID)
		w.str("rule_id", d.RuleID)
		w.str("policy_hash", d.PolicyHash)
		w.optStr("reason", d.Reason)
		w.optStr("code", d.Code)
		w.int("eval_ns", d.EvalNanos)
		if len(d.Shadow) > 0 {
			w.strs("shadow", d.Shadow)
		}
		w.optStr("credential_jti", d.CredentialJTI)
		w.close()
	}
	if r := e.Response; r != nil {
		w.key("response")
		w.open()
		w.int("status", int64(r.Status))
		w.int("duration_ns", r.DurationNs)
		if r.Bytes != 0 {
			w.int("bytes", r.Bytes)
		}
		w.optStr("outcome", r.Outcome)
		w.close()
	}
	if c := e.Checkpoint; c != nil {
		w.key("checkpoint")
		w.open()
		w.str("key_id", c.KeyID)
		w.str("sig", c.Signature)
		if len(c.Unrecorded) > 0 {
			w.key("unrecorded")
			w.b = append(w.b, '[')
			for i, s := range c.Unrecorded {
				w.sep(i)
				w.b = strconv.AppendUint(w.b, s, 10)
			}
			w.b = append(w.b, ']')
		}
		w.close()
	}
	w.close()
}

func (w *encoder) identity(id *Identity) {
	w.open()
	w.optStr("sub", id.Subject)
	w.optStr("iss", id.Issuer)
	w.optStr("spiffe_id", id.SPIFFEID)
	if len(id.Chain) > 0 {
		w.key("chain")
		w.b = append(w.b, '[')
		for i, a := range id.Chain {
			w.sep(i)
			w.open()
			w.str("sub", a.Subject)
			w.optStr("iss", a.Issuer)
			w.close()
		}
		w.b = append(w.b, ']')
	}
	w.optStr("session_id", id.SessionID)
	w.optStr("task_id", id.TaskID)
	w.optStr("session_source", id.SessionSource)
	w.optStr("task_source", id.TaskSource)
	w.close()
}

func (w *encoder) request(r *Request) {
	w.open()
	w.str("method", r.Method)
	w.str("host", r.Host)
	w.str("path", r.Path)
	w.optStr("query", r.Query)
	w.optStr("resource", r.Resource)
	if len(r.Headers) > 0 {
		w.key("headers")
		w.open()
		names := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if w.comma {
				w.b = append(w.b, ',')
			}
			w.b = appendString(w.b, k)
			w.b = append(w.b, ':')
			w.b = appendString(w.b, r.Headers[k])
			w.comma = true
		}
		w.close()
	}
	w.optStr("rpc_method", r.RPCMethod)
	w.optStr("rpc_kind", r.RPCKind)
	w.optStr("tool", r.Tool)
	w.optStr("prompt", r.Prompt)
	w.optStr("args_digest", r.ArgsDigest)
	if len(r.Args) > 0 {
		w.key("args")
		w.raw(r.Args)
	}
	if r.BodyBytes != 0 {
		w.int("body_bytes", r.BodyBytes)
	}
	w.optStr("destination", r.Destination)
	w.optStr("data_class", r.DataClass)
	if len(r.Truncated) > 0 {
		w.strs("truncated", r.Truncated)
	}
	w.close()
}

// raw appends embedded JSON as json.Marshal does a json.RawMessage:
// validated, compacted and HTML-escaped.
func (w *encoder) raw(v json.RawMessage) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		w.invalidArgs = true
		return
	}
	var escaped bytes.Buffer
	json.HTMLEscape(&escaped, compact.Bytes())
	w.b = append(w.b, escaped.Bytes()...)
}

const hexDigits = "0123456789abcdef"

// plain marks the bytes a JSON string holds as they are: ASCII from space
// up, except the quote, the backslash and the HTML-significant <, > and &.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// appendString appends s as a JSON string the way encoding/json does:
// HTML-significant characters, U+2028 and U+2029 escaped, invalid UTF-8
// replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
