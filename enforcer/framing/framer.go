package framing

import (
	"bytes"
	"errors"
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
// It refuses: Content-Length together with Transfer-Encoding; more than
// one Content-Length or Transfer-Encoding field; a Content-Length that is
// not digits; a Transfer-Encoding other than "chunked"; obs-fold
// continuation lines; bare LF line ends; whitespace before a field's colon;
// malformed chunk sizes or chunk data not followed by CRLF.
//
// It never buffers a body: body and chunk bytes are only counted.
type framer struct {
	state  framerState
	limit  int    // longest header block checked; past it net/http answers 431
	line   []byte // the header block or chunk line being read
	remain int64  // body or chunk bytes still to come (plus CRLF for chunks)
	err    error
}

type framerState int

const (
	stHeaders framerState = iota
	stBody
	stChunkSize
	stChunkData
	stTrailers
	stPass // HTTP/2 preface or a header block too long to check
)

// maxChunkLine bounds a chunk-size line, extensions included.
const maxChunkLine = 4 << 10

var errFraming = errors.New("ambiguous request framing")

// feed advances over p. It returns errFraming (wrapped) once a request is
// refused; the connection must then be closed.
func (f *framer) feed(p []byte) error {
	for len(p) > 0 && f.err == nil {
		switch f.state {
		case stPass:
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
						f.fail("chunk data not followed by CRLF")
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
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.line = append(f.line, p...)
				p = nil
			} else {
				f.line = append(f.line, p[:i+1]...)
				p = p[i+1:]
			}
			if f.state == stChunkSize && len(f.line) > maxChunkLine {
				f.fail("chunk size line too long")
				break
			}
			if f.state != stChunkSize && len(f.line) > f.limit {
				f.state, f.line = stPass, nil
				return nil
			}
			if i >= 0 {
				f.endOfLine()
			}
		}
	}
	return f.err
}

func (f *framer) fail(format string, args ...any) {
	f.err = fmt.Errorf("%w: %s", errFraming, fmt.Sprintf(format, args...))
}

// endOfLine handles the line just completed (f.line ends in '\n').
func (f *framer) endOfLine() {
	switch f.state {
	case stHeaders:
		block := f.line
		if bytes.Equal(block, []byte("\r\n")) { // CRLF between requests (RFC 9112 §2.2)
			f.line = f.line[:0]
			return
		}
		if !bytes.HasSuffix(block, []byte("\r\n\r\n")) {
			if len(block) >= 2 && block[len(block)-2] != '\r' {
				f.fail("bare LF line end")
			}
			return // the block goes on
		}
		f.line = f.line[:0]
		f.header(block)
	case stChunkSize:
		line := f.line
		f.line = f.line[:0]
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			f.fail("bare LF after chunk size")
			return
		}
		size := line[:len(line)-2]
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 || len(size) == 0 || len(size) > 15 || !isHex(size) {
			f.fail("malformed chunk size %q", size)
			return
		}
		if n == 0 {
			f.state = stTrailers
			return
		}
		f.state, f.remain = stChunkData, n+2
	case stTrailers:
		line := f.line
		f.line = f.line[:0]
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			f.fail("bare LF in trailers")
			return
		}
		if len(line) == 2 {
			f.state = stHeaders
		}
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// header checks a complete header block (request line, fields, CRLF CRLF)
// and sets the state for the body that follows.
func (f *framer) header(block []byte) {
	lines := bytes.Split(block[:len(block)-4], []byte("\r\n"))
	if bytes.Equal(lines[0], []byte("PRI * HTTP/2.0")) {
		f.state = stPass // h2c prior knowledge: HTTP/2 frames its own messages
		return
	}
	var cl, te int
	var length int64
	for _, l := range lines[1:] {
		if bytes.IndexByte(l, '\n') >= 0 {
			f.fail("bare LF line end")
			return
		}
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			f.fail("obs-fold continuation line")
			return
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(name) == 0 {
			f.fail("field without a name")
			return
		}
		if bytes.ContainsAny(name, " \t") {
			f.fail("whitespace in field name %q", name)
			return
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl++
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || len(value) == 0 || value[0] == '+' {
				f.fail("malformed Content-Length %q", value)
				return
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te++
			if !bytes.EqualFold(value, []byte("chunked")) {
				f.fail("Transfer-Encoding %q", value)
				return
			}
		}
	}
	switch {
	case cl > 1:
		f.fail("%d Content-Length fields", cl)
	case te > 1:
		f.fail("%d Transfer-Encoding fields", te)
	case cl > 0 && te > 0:
		f.fail("both Content-Length and Transfer-Encoding")
	case te > 0:
		f.state = stChunkSize
	case length > 0:
		f.state, f.remain = stBody, length
	default:
		f.state = stHeaders
	}
}
