package mcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The parser reads one encoding of JSON: UTF-8 without a byte order mark,
// as RFC 8259 §8.1 requires of JSON exchanged between systems. Backends
// are more lenient: Python's json.loads(bytes) detects UTF-16 and UTF-32,
// many decoders skip a BOM, Json.NET skips any Unicode white space and
// comments, servers decode the body in the charset Content-Type names, and
// some decompress a Content-Encoding themselves. Each would run as a tool
// call a body the parser took for plain HTTP, so the enforcer refuses them:
// CheckHeader the headers that change how the bytes are read, sniff the
// bodies that a lenient decoder reads as JSON and the parser does not.

// Errors of CheckHeader.
var (
	// ErrContentEncoding is a body with a content coding other than
	// identity.
	ErrContentEncoding = errors.New("mcp: the request body has a content coding")
	// ErrCharset is a Content-Type that names a charset other than UTF-8,
	// is malformed, or is repeated.
	ErrCharset = errors.New("mcp: the request body's charset is not UTF-8")
)

// CheckHeader refuses the request headers under which a backend could read
// the body as other bytes or characters than the parser reads: a
// Content-Encoding other than identity (any case, any of its fields), a
// Transfer-Encoding other than chunked, more than one Content-Type, one
// that does not parse, and a charset other than utf-8. The enforcer does
// not decode a content coding: in the gateway modes the gateway forwards
// the body as sent, so a decoded copy would be a second reading, and a
// decompressor is one more parser to agree with the backend's.
func CheckHeader(h http.Header) error {
	for _, name := range []string{"Content-Encoding", "Transfer-Encoding"} {
		for _, v := range h.Values(name) {
			for coding := range strings.SplitSeq(v, ",") {
				coding = strings.TrimSpace(coding)
				switch {
				case coding == "",
					name == "Content-Encoding" && strings.EqualFold(coding, "identity"),
					name == "Transfer-Encoding" && strings.EqualFold(coding, "chunked"):
				default:
					return fmt.Errorf("%w: %s %q", ErrContentEncoding, name, v)
				}
			}
		}
	}
	ct := h.Values("Content-Type")
	switch {
	case len(ct) == 0:
		return nil
	case len(ct) > 1:
		return fmt.Errorf("%w: %d Content-Type fields", ErrCharset, len(ct))
	}
	_, params, err := mime.ParseMediaType(ct[0])
	if err != nil {
		return fmt.Errorf("%w: Content-Type %q: %v", ErrCharset, ct[0], err)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("%w: charset %q", ErrCharset, cs)
	}
	return nil
}

// reading is how a body can be read as JSON.
type reading int

const (
	// notJSON: no decoder the enforcer knows of reads an object or an
	// array from the body; it is plain HTTP.
	notJSON reading = iota
	// utf8JSON: UTF-8 without a BOM, the parser's reading. The body
	// starts, after white space and comments in the most lenient sense,
	// with { or [; whether it is valid JSON is the scanner's to say.
	utf8JSON
	// bomJSON: as utf8JSON after a UTF-8 byte order mark.
	bomJSON
	// wideJSON: UTF-16 or UTF-32, with or without a byte order mark.
	wideJSON
)

// sniff says how body can be read as JSON, by the most lenient decoder
// the enforcer knows of: anything but notJSON is for the parser to accept
// or refuse, never to pass as plain HTTP.
func sniff(body []byte) reading {
	// Every ASCII character in UTF-16 or UTF-32 has a zero byte beside it,
	// and each of their byte order marks starts with FE FF or FF FE; a
	// body with neither is no JSON in them. UTF-8 JSON holds no zero byte.
	if bytes.IndexByte(body, 0) >= 0 || bytes.HasPrefix(body, []byte{0xfe, 0xff}) || bytes.HasPrefix(body, []byte{0xff, 0xfe}) {
		for _, next := range []func([]byte) (rune, int){utf16LE, utf16BE, utf32LE, utf32BE} {
			if opensJSON(body, next) {
				return wideJSON
			}
		}
	}
	if rest, ok := bytes.CutPrefix(body, []byte("\xef\xbb\xbf")); ok {
		if opensJSON(rest, utf8Rune) {
			return bomJSON
		}
		return notJSON
	}
	if opensJSON(body, utf8Rune) {
		return utf8JSON
	}
	return notJSON
}

// opensJSON reports whether b, read as next decodes, starts with { or [
// after anything a lenient decoder skips: Unicode white space (U+0085 and
// U+00A0 among it), ASCII control characters, byte order marks, zero-width
// spaces, and /* */, // and # comments. A byte that is not UTF-8 is read as
// Latin-1, where 0x85 and 0xA0 are white space too. (C1 control characters
// other than U+0085 are white space to no decoder the enforcer knows of,
// and skipping them would take for JSON binary bodies that are not, such
// as gzip's.)
func opensJSON(b []byte, next func([]byte) (rune, int)) bool {
	for len(b) > 0 {
		r, n := next(b)
		if n == 0 {
			return false
		}
		if r == utf8.RuneError && n == 1 {
			r = rune(b[0])
		}
		switch {
		case r == '{' || r == '[':
			return true
		case r == '/' || r == '#':
			// Comments; whatever they hold, what follows them decides.
			end := commentEnd(b, n, r, next)
			if end < 0 {
				return false
			}
			b = b[end:]
			continue
		case unicode.IsSpace(r), r < 0x20, r == 0x7f, r == 0xfeff, r == 0x200b:
		default:
			return false
		}
		b = b[n:]
	}
	return false
}

// commentEnd returns the offset in b just past the comment that starts
// with r (n bytes long), or -1 when b does not hold a comment there.
func commentEnd(b []byte, n int, r rune, next func([]byte) (rune, int)) int {
	block := false
	if r == '/' {
		r2, n2 := next(b[n:])
		switch {
		case n2 == 0:
			return -1
		case r2 == '*':
			block = true
		case r2 != '/':
			return -1
		}
		n += n2
	}
	prev := rune(0)
	for i := n; i < len(b); {
		c, m := next(b[i:])
		if m == 0 {
			return -1
		}
		i += m
		switch {
		case block && prev == '*' && c == '/':
			return i
		case !block && (c == '\n' || c == '\r'):
			return i
		}
		prev = c
	}
	return -1
}

func utf8Rune(b []byte) (rune, int) { return utf8.DecodeRune(b) }

func utf16LE(b []byte) (rune, int) {
	if len(b) < 2 {
		return 0, 0
	}
	return rune(binary.LittleEndian.Uint16(b)), 2
}

func utf16BE(b []byte) (rune, int) {
	if len(b) < 2 {
		return 0, 0
	}
	return rune(binary.BigEndian.Uint16(b)), 2
}

func utf32LE(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	return utf32Rune(binary.LittleEndian.Uint32(b)), 4
}

func utf32BE(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	return utf32Rune(binary.BigEndian.Uint32(b)), 4
}

// utf32Rune is the rune of a UTF-32 code unit; one beyond Unicode is
// U+FFFD, which no lenient decoder skips.
func utf32Rune(u uint32) rune {
	if u > unicode.MaxRune {
		return utf8.RuneError
	}
	return rune(u)
}
