package event

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Decoding without reflection. Every consumer of the stream (collector,
// correlator's sessions and detections, verify) decodes every event, and
// encoding/json costs several times what the correlator's rules do. So
// Decode first tries a direct reader of the form Encode writes, and it
// gives up, leaving the event to json.Unmarshal, at anything outside the
// part of JSON where its reading is known to be json.Unmarshal's:
//
//   - a key that is not exactly a field's tag (json.Unmarshal also matches
//     keys case-insensitively), or a key given twice;
//   - a string with a control character, invalid UTF-8 or an escaped
//     UTF-16 surrogate (json.Unmarshal replaces or pairs them), and in a
//     key or a time any escape;
//   - a number into an integer field that is not a plain integer in range;
//   - any JSON that is not valid.
//
// So a fast decode is either json.Unmarshal's result or not taken, and
// every error is json.Unmarshal's own (FuzzFastDecode holds it to that).
// The fields it leaves zero for null are those json.Unmarshal leaves zero:
// each is decoded once, into a fresh value; Request.Args, a RawMessage,
// keeps its bytes, null too, as json.Unmarshal does.

// decodeFast decodes data into e, which must be zero, as json.Unmarshal
// would; false: data is outside what it reads, and e is to be discarded.
func decodeFast(data []byte, e *Event) bool {
	d := reader{b: data}
	if !d.event(e) {
		return false
	}
	d.space()
	return d.i == len(d.b)
}

// reader reads JSON from b at i.
type reader struct {
	b []byte
	i int
}

func (d *reader) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// eat consumes c, after any space, if it comes next.
func (d *reader) eat(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// null consumes a null if one comes next.
func (d *reader) null() bool {
	d.space()
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// object reads an object, handing each key to member, which reads the
// value and returns the field's index (below 64), or -1 to give up.
func (d *reader) object(member func(key []byte) int) bool { return d.members(member, true) }

// members reads an object; once: a field index seen twice gives up.
func (d *reader) members(member func(key []byte) int, once bool) bool {
	if !d.eat('{') {
		return false
	}
	if d.eat('}') {
		return true
	}
	var seen uint64
	for {
		key, ok := d.plain()
		if !ok || !d.eat(':') {
			return false
		}
		n := member(key)
		if n < 0 || once && seen&(1<<n) != 0 {
			return false
		}
		seen |= 1 << n
		if d.eat(',') {
			continue
		}
		return d.eat('}')
	}
}

// plain reads a string of no escapes and no control characters, valid
// UTF-8, and returns its bytes (aliasing b).
func (d *reader) plain() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	start, ascii := d.i, true
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// The value readers: each reads one value into a fresh field and returns
// n, the field's index, or -1 to give up. null leaves the field zero.

func (d *reader) str(p *string, n int) int {
	if d.null() {
		return n
	}
	d.space()
	start := d.i
	if s, ok := d.plain(); ok {
		*p = string(s)
		return n
	}
	// Escapes: json.Marshal writes them for quotes, backslashes, control
	// characters and <, >, & (a query string's &, a prompt's newline).
	d.i = start
	s, ok := d.escaped()
	if !ok {
		return -1
	}
	*p = s
	return n
}

// escaped reads a string that may hold escapes, as json.Unmarshal
// unquotes it; it gives up at an escaped UTF-16 surrogate (json.Unmarshal
// pairs or replaces them), invalid UTF-8 and a control character.
func (d *reader) escaped() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	var out []byte
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			out = append(out, d.b[start:d.i]...)
			d.i++
			return string(out), utf8.Valid(out)
		case c < 0x20:
			return "", false
		case c != '\\':
			d.i++
			continue
		}
		out = append(out, d.b[start:d.i]...)
		if d.i+1 >= len(d.b) {
			return "", false
		}
		switch e := d.b[d.i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.i+6 > len(d.b) {
				return "", false
			}
			r, err := strconv.ParseUint(string(d.b[d.i+2:d.i+6]), 16, 16)
			if err != nil || r >= 0xD800 && r < 0xE000 {
				return "", false
			}
			out = utf8.AppendRune(out, rune(r))
			d.i += 4
		default:
			return "", false
		}
		d.i += 2
		start = d.i
	}
	return "", false
}

// strType reads a string into a string-kinded field (Kind, Effect, ...).
func strType[T ~string](d *reader, p *T, n int) int {
	var s string
	if d.str(&s, n) < 0 {
		return -1
	}
	*p = T(s)
	return n
}

// number returns the bytes of a plain integer: an optional minus, then 0
// or a digit run not starting with 0, and no fraction or exponent.
func (d *reader) number() ([]byte, bool) {
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	switch {
	case d.i == digits, d.b[digits] == '0' && d.i > digits+1:
		return nil, false
	case d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E'):
		return nil, false
	}
	return d.b[start:d.i], true
}

func integer[T int | int64](d *reader, p *T, n int) int {
	if d.null() {
		return n
	}
	s, ok := d.number()
	if !ok {
		return -1
	}
	bits := 64
	if _, isInt := any(*p).(int); isInt {
		bits = strconv.IntSize
	}
	v, err := strconv.ParseInt(string(s), 10, bits)
	if err != nil {
		return -1
	}
	*p = T(v)
	return n
}

func (d *reader) uint(p *uint64, n int) int {
	if d.null() {
		return n
	}
	s, ok := d.number()
	if !ok || s[0] == '-' {
		return -1
	}
	v, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return -1
	}
	*p = v
	return n
}

// time reads a string through time.Time's own UnmarshalJSON, as
// json.Unmarshal does, given the same bytes, quotes included.
func (d *reader) time(p *time.Time, n int) int {
	if d.null() {
		return n
	}
	d.space()
	start := d.i
	if _, ok := d.plain(); !ok {
		return -1
	}
	if p.UnmarshalJSON(d.b[start:d.i]) != nil {
		return -1
	}
	return n
}

// strings reads an array of strings; [] is an empty, not a nil, slice.
func (d *reader) strings(p *[]string, n int) int {
	return array(d, p, n, func(s *string) bool { return d.str(s, 0) == 0 })
}

func (d *reader) uints(p *[]uint64, n int) int {
	return array(d, p, n, func(v *uint64) bool { return d.uint(v, 0) == 0 })
}

// array reads an array, each element by elem into a fresh zero T.
func array[T any](d *reader, p *[]T, n int, elem func(*T) bool) int {
	if d.null() {
		return n
	}
	if !d.eat('[') {
		return -1
	}
	out := make([]T, 0, 1)
	if !d.eat(']') {
		for {
			var v T
			if !elem(&v) {
				return -1
			}
			out = append(out, v)
			if d.eat(',') {
				continue
			}
			if !d.eat(']') {
				return -1
			}
			break
		}
	}
	*p = out
	return n
}

// fresh reads an object into a new *T by read, or leaves *p nil for null.
func fresh[T any](d *reader, p **T, n int, read func(*T) bool) int {
	if d.null() {
		return n
	}
	v := new(T)
	if !read(v) {
		return -1
	}
	*p = v
	return n
}

// raw reads any one valid JSON value and keeps a copy of its bytes, as
// json.RawMessage does (null included).
func (d *reader) raw(p *json.RawMessage, n int) int {
	d.space()
	start := d.i
	if !d.skip(0) || !json.Valid(d.b[start:d.i]) {
		return -1
	}
	*p = append(json.RawMessage(nil), d.b[start:d.i]...)
	return n
}

// skip moves past one value; json.Valid judges what it passed. depth
// bounds nesting, as json.Unmarshal's own limit does (10000).
func (d *reader) skip(depth int) bool {
	if depth > 1000 {
		return false
	}
	d.space()
	if d.i >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case '"':
		for d.i++; d.i < len(d.b); d.i++ {
			switch d.b[d.i] {
			case '\\':
				d.i++
			case '"':
				d.i++
				return true
			}
		}
		return false
	case '{', '[':
		end := byte('}')
		if d.b[d.i] == '[' {
			end = ']'
		}
		d.i++
		if d.eat(end) {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			if end == '}' {
				if !d.eat(':') || !d.skip(depth+1) {
					return false
				}
			}
			if d.eat(',') {
				continue
			}
			return d.eat(end)
		}
	default:
		start := d.i
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r', ':':
				return d.i > start
			}
			d.i++
		}
		return d.i > start
	}
}

func (d *reader) event(e *Event) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "v":
			return integer(d, &e.V, 0)
		case "id":
			return d.str(&e.ID, 1)
		case "kind":
			return strType(d, &e.Kind, 2)
		case "time":
			return d.time(&e.Time, 3)
		case "tenant":
			return d.str(&e.Tenant, 4)
		case "instance":
			return d.str(&e.Instance, 5)
		case "seq":
			return d.uint(&e.Seq, 6)
		case "epoch":
			return d.str(&e.Epoch, 7)
		case "prev":
			return d.str(&e.Prev, 8)
		case "request_id":
			return d.str(&e.RequestID, 9)
		case "trace":
			if d.null() {
				return 10
			}
			return pick(d.trace(&e.Trace), 10)
		case "identity":
			return fresh(d, &e.Identity, 11, d.identity)
		case "request":
			return fresh(d, &e.Request, 12, d.request)
		case "decision":
			return fresh(d, &e.Decision, 13, d.decision)
		case "response":
			return fresh(d, &e.Response, 14, d.response)
		case "checkpoint":
			return fresh(d, &e.Checkpoint, 15, d.checkpoint)
		case "alert":
			return fresh(d, &e.Alert, 16, d.alert)
		}
		return -1
	})
}

// pick is n when ok, else -1.
func pick(ok bool, n int) int {
	if ok {
		return n
	}
	return -1
}

func (d *reader) trace(t *Trace) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "traceparent":
			return d.str(&t.TraceParent, 0)
		case "tracestate":
			return d.str(&t.TraceState, 1)
		}
		return -1
	})
}

func (d *reader) identity(id *Identity) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "sub":
			return d.str(&id.Subject, 0)
		case "iss":
			return d.str(&id.Issuer, 1)
		case "spiffe_id":
			return d.str(&id.SPIFFEID, 2)
		case "chain":
			return array(d, &id.Chain, 3, d.actor)
		case "session_id":
			return d.str(&id.SessionID, 4)
		case "task_id":
			return d.str(&id.TaskID, 5)
		case "session_source":
			return d.str(&id.SessionSource, 6)
		case "task_source":
			return d.str(&id.TaskSource, 7)
		}
		return -1
	})
}

func (d *reader) actor(a *Actor) bool {
	if d.null() {
		return true
	}
	return d.object(func(k []byte) int {
		switch string(k) {
		case "sub":
			return d.str(&a.Subject, 0)
		case "iss":
			return d.str(&a.Issuer, 1)
		}
		return -1
	})
}

func (d *reader) request(r *Request) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "method":
			return d.str(&r.Method, 0)
		case "host":
			return d.str(&r.Host, 1)
		case "path":
			return d.str(&r.Path, 2)
		case "query":
			return d.str(&r.Query, 3)
		case "resource":
			return d.str(&r.Resource, 4)
		case "headers":
			return d.headers(&r.Headers, 5)
		case "rpc_method":
			return d.str(&r.RPCMethod, 6)
		case "rpc_kind":
			return d.str(&r.RPCKind, 7)
		case "tool":
			return d.str(&r.Tool, 8)
		case "prompt":
			return d.str(&r.Prompt, 9)
		case "args_digest":
			return d.str(&r.ArgsDigest, 10)
		case "args":
			return d.raw(&r.Args, 11)
		case "body_bytes":
			return integer(d, &r.BodyBytes, 12)
		case "destination":
			return d.str(&r.Destination, 13)
		case "data_class":
			return d.str(&r.DataClass, 14)
		case "truncated":
			return d.strings(&r.Truncated, 15)
		}
		return -1
	})
}

// headers reads an object of strings into a new map; a key given twice
// keeps its last value, as json.Unmarshal does.
func (d *reader) headers(p *map[string]string, n int) int {
	if d.null() {
		return n
	}
	m := map[string]string{}
	ok := d.members(func(k []byte) int {
		var v string
		if d.str(&v, 0) < 0 {
			return -1
		}
		m[string(k)] = v
		return 0
	}, false)
	if !ok {
		return -1
	}
	*p = m
	return n
}

func (d *reader) decision(x *Decision) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "effect":
			return strType(d, &x.Effect, 0)
		case "policy_id":
			return d.str(&x.PolicyID, 1)
		case "rule_id":
			return d.str(&x.RuleID, 2)
		case "policy_hash":
			return d.str(&x.PolicyHash, 3)
		case "reason":
			return d.str(&x.Reason, 4)
		case "code":
			return d.str(&x.Code, 5)
		case "eval_ns":
			return integer(d, &x.EvalNanos, 6)
		case "shadow":
			return d.strings(&x.Shadow, 7)
		}
		return -1
	})
}

func (d *reader) response(r *Response) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "status":
			return integer(d, &r.Status, 0)
		case "duration_ns":
			return integer(d, &r.DurationNs, 1)
		case "bytes":
			return integer(d, &r.Bytes, 2)
		case "outcome":
			return d.str(&r.Outcome, 3)
		}
		return -1
	})
}

func (d *reader) checkpoint(c *Checkpoint) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "key_id":
			return d.str(&c.KeyID, 0)
		case "sig":
			return d.str(&c.Signature, 1)
		case "unrecorded":
			return d.uints(&c.Unrecorded, 2)
		}
		return -1
	})
}

func (d *reader) alert(a *Alert) bool {
	return d.object(func(k []byte) int {
		switch string(k) {
		case "rule_id":
			return d.str(&a.RuleID, 0)
		case "title":
			return d.str(&a.Title, 1)
		case "severity":
			return strType(d, &a.Severity, 2)
		case "tags":
			return d.strings(&a.Tags, 3)
		case "group":
			return array(d, &a.Group, 4, d.group)
		case "first":
			return d.time(&a.First, 5)
		case "last":
			return d.time(&a.Last, 6)
		case "count":
			return integer(d, &a.Count, 7)
		case "evidence":
			return d.strings(&a.Evidence, 8)
		}
		return -1
	})
}

func (d *reader) group(g *GroupValue) bool {
	if d.null() {
		return true
	}
	return d.object(func(k []byte) int {
		switch string(k) {
		case "field":
			return d.str(&g.Field, 0)
		case "value":
			return d.str(&g.Value, 1)
		}
		return -1
	})
}
