package framing

import (
	"bytes"
	"fmt"
	"strconv"
)

// framer follows the framing of the HTTP/1.1 requests on one connection
// (RFC 9112 §6) as their bytes pass, and stops at the first request whose
// framing another HTTP parser could read differently: the shapes of request
// smuggling that net/http alone would accept (it lets Transfer-Encoding
// override Content-Length, and merges repeated equal Content-Lengths).
// Refusing them matters when a gateway sits in front: it and the enforcer
// must agree on where each request ends.
//
// It refuses (Malformed): Content-Length together with Transfer-Encoding;
// more than one Content-Length or Transfer-Encoding field; a Content-Length
// that is not digits; a Transfer-Encoding other than "chunked", or in a
// request older than HTTP/1.1; obs-fold continuation lines; bare LF or CR;
// a request line that is not method, target and HTTP/1.0 or HTTP/1.1; a
// field name that is not a token or a value with control characters;
// malformed chunk sizes or chunk data not followed by CRLF. It refuses
// (HeadersTooLarge) a header block longer than its limit, and trailers
// longer than maxTrailers.
//
// It never stops checking an HTTP/1 connection: what it cannot check, it
// refuses. Only an h2c connection (the HTTP/2 preface first) is let
// through unchecked, since HTTP/2 frames its own messages.
//
// It never buffers a body: body and chunk bytes are only counted.
type framer struct {
	state  framerState
	limit  int    // longest header block, request line to blank line
	line   []byte // the header block, chunk line or trailers being read
	remain int64  // body or chunk bytes still to come (plus CRLF for chunks)
	n      int    // header blocks read
	start  []byte // the request line of a chunked request, for the record
	err    *Refusal
}

type framerState int

const (
	stHeaders framerState = iota
	stBody
	stChunkSize
	stChunkData
	stTrailers
	stH2 // h2c prior knowledge: HTTP/2 frames its own messages
)

// net/http reads a chunk line and the trailers within its 4 KiB buffer
// and answers past it itself; these bounds, well below, make sure the
// refusal is ours.
const (
	maxChunkLine = 1 << 10 // a chunk-size line, extensions included
	maxTrailers  = 2 << 10 // the trailer section, its blank line included
)

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// feed advances over p. It returns the refusal once a request is refused;
// the connection must then be closed.
func (f *framer) feed(p []byte) *Refusal {
	for len(p) > 0 && f.err == nil {
		switch f.state {
		case stH2:
			return nil
		case stBody:
			n := min(int64(len(p)), f.remain)
			f.remain -= n
			p = p[n:]
			if f.remain == 0 {
				f.state = stHeaders
			}
		case stChunkData:
			// The chunk's data, then exactly CRLF.
			for len(p) > 0 && f.remain > 0 {
				if f.remain <= 2 {
					want := "\r\n"[2-f.remain]
					if p[0] != want {
						f.fail(Malformed, "chunk data not followed by CRLF")
						break
					}
					f.remain--
					p = p[1:]
					continue
				}
				n := min(int64(len(p)), f.remain-2)
				f.remain -= n
				p = p[n:]
			}
			if f.remain == 0 && f.err == nil {
				f.state = stChunkSize
			}
		default: // line-oriented states
			take := p
			i := bytes.IndexByte(p, '\n')
			if i >= 0 {
				take = p[:i+1]
			}
			p = p[len(take):]
			if room := f.bound() - len(f.line); len(take) > room {
				f.line = append(f.line, take[:room]...) // kept for the record
				f.tooLong()
				break
			}
			f.line = append(f.line, take...)
			if i >= 0 {
				f.endOfLine()
			}
		}
	}
	return f.err
}

// bound is the longest f.line may grow in the current state.
func (f *framer) bound() int {
	switch f.state {
	case stChunkSize:
		return maxChunkLine
	case stTrailers:
		return min(f.limit, maxTrailers)
	}
	return f.limit
}

func (f *framer) tooLong() {
	switch f.state {
	case stChunkSize:
		f.fail(Malformed, "chunk size line over %d bytes", maxChunkLine)
	case stTrailers:
		f.fail(HeadersTooLarge, "trailers over %d bytes", f.bound())
	default:
		f.fail(HeadersTooLarge, "header block over %d bytes", f.limit)
	}
}

// fail refuses the request being read, with what can be recorded of it.
func (f *framer) fail(code Code, format string, args ...any) {
	r := &Refusal{Code: code, Reason: fmt.Sprintf(format, args...), Request: f.n}
	line := f.start
	if f.state == stHeaders { // the request is the header block in f.line
		r.Request, line = f.n+1, f.line
	}
	r.Method, r.Target, r.Truncated = recordable(line)
	f.err = r
}

// endOfLine handles the line just completed (f.line ends in '\n').
func (f *framer) endOfLine() {
	n := len(f.line)
	if n < 2 || f.line[n-2] != '\r' {
		f.fail(Malformed, "bare LF line end")
		return
	}
	switch f.state {
	case stHeaders:
		if n == 2 { // CRLF between requests (RFC 9112 §2.2)
			f.line = f.line[:0]
			return
		}
		if !bytes.HasSuffix(f.line, crlfcrlf) {
			return // the block goes on
		}
		if f.header(f.line); f.err == nil {
			f.line = f.line[:0]
		}
	case stChunkSize:
		size := f.line[:n-2]
		f.line = f.line[:0]
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		v, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || v < 0 || len(size) == 0 || len(size) > 15 || !isHex(size) {
			f.fail(Malformed, "malformed chunk size %s", quote(size))
			return
		}
		if v == 0 {
			f.state = stTrailers
			return
		}
		f.state, f.remain = stChunkData, v+2
	case stTrailers:
		if n == 2 || bytes.HasSuffix(f.line, crlfcrlf) {
			f.state, f.line = stHeaders, f.line[:0]
		}
	}
}

// header checks a complete header block (request line, fields, CRLF CRLF)
// and sets the state for the body that follows.
func (f *framer) header(block []byte) {
	lines := bytes.Split(block[:len(block)-4], crlf)
	if f.n == 0 && len(lines) == 1 && bytes.Equal(lines[0], []byte("PRI * HTTP/2.0")) {
		// h2c prior knowledge, which net/http serves only as a
		// connection's first bytes; elsewhere PRI is refused below.
		f.state = stH2
		return
	}
	http11, ok := requestLine(lines[0])
	if !ok {
		f.fail(Malformed, "malformed request line")
		return
	}
	var cl, te int
	var length int64
	for _, l := range lines[1:] {
		if bytes.IndexByte(l, '\r') >= 0 {
			f.fail(Malformed, "bare CR")
			return
		}
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			f.fail(Malformed, "obs-fold continuation line")
			return
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || !isToken(name) {
			f.fail(Malformed, "invalid field name %s", quote(name))
			return
		}
		value = bytes.Trim(value, " \t")
		if !isFieldValue(value) {
			f.fail(Malformed, "invalid value of field %s", quote(name))
			return
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl++
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || len(value) == 0 || !isDigits(value) {
				f.fail(Malformed, "malformed Content-Length %s", quote(value))
				return
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te++
			if !bytes.EqualFold(value, []byte("chunked")) {
				f.fail(Malformed, "Transfer-Encoding %s", quote(value))
				return
			}
		}
	}
	switch {
	case cl > 1:
		f.fail(Malformed, "%d Content-Length fields", cl)
	case te > 1:
		f.fail(Malformed, "%d Transfer-Encoding fields", te)
	case cl > 0 && te > 0:
		f.fail(Malformed, "both Content-Length and Transfer-Encoding")
	case te > 0 && !http11:
		// net/http ignores it there and reads no body (RFC 9112 §6.1:
		// the framing is faulty).
		f.fail(Malformed, "Transfer-Encoding in an HTTP/1.0 request")
	case te > 0:
		f.n++
		f.start = append(f.start[:0], lines[0][:min(len(lines[0]), maxStart)]...)
		f.state = stChunkSize
	case length > 0:
		f.n++
		f.state, f.remain = stBody, length
	default:
		f.n++
		f.state = stHeaders
	}
}

// maxStart bounds the request line kept for the record of a refusal in
// a chunked body: enough for a method and a target of MaxRecorded bytes.
const maxStart = 2*MaxRecorded + len(" HTTP/1.1") + 1

// requestLine checks "method SP request-target SP HTTP-version", split as
// net/http splits it, and reports whether the version is HTTP/1.1.
func requestLine(l []byte) (http11, ok bool) {
	method, rest, ok1 := bytes.Cut(l, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 {
		return false, false
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return false, false
		}
	}
	switch string(version) {
	case "HTTP/1.1":
		return true, true
	case "HTTP/1.0":
		return false, true
	}
	return false, false
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token (a method or field name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tchar[c] {
			return false
		}
	}
	return true
}

var tchar = func() (t [0x80]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldValue reports whether b has no control characters but HTAB
// (RFC 9110 §5.5; obs-text is allowed, as net/http allows it).
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// quote is b for a refusal's reason: quoted, and cut to 64 bytes.
func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
