package mcp

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
)

// The scanner is a strict, allocation-light JSON reader written for the
// enforcer's one question: can this body be read in only one way? It
// accepts exactly what encoding/json's json.Valid accepts, and in one pass
// also enforces a nesting-depth limit and, where asked, refuses objects
// whose keys repeat (compared as encoding/json compares struct fields,
// case-insensitively). encoding/json's Decoder.Token would do the same work
// with an allocation per token; on the hot path of every request that
// difference is most of the parse time.

// scanErrorKind says why a body was refused.
type scanErrorKind int

const (
	errSyntax scanErrorKind = iota
	errDepth
	errDuplicate
)

// scanError is a refused body. ptr is the JSON pointer of the value the
// error is in (for errDuplicate: the object with the repeated key).
type scanError struct {
	kind   scanErrorKind
	offset int
	msg    string
	ptr    []string // reversed: innermost segment first, built on unwind
}

func (e *scanError) Error() string { return e.msg }

// pointer is e's location as an RFC 6901 JSON pointer.
func (e *scanError) pointer() string {
	var b strings.Builder
	for i := len(e.ptr) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(e.ptr[i]))
	}
	return b.String()
}

// foldSetThreshold is the number of keys after which an object's keys are
// checked through a map instead of pairwise: pairwise comparison allocates
// nothing and wins on the small objects of real requests, while the map
// keeps a hostile object with many keys from costing quadratic time.
const foldSetThreshold = 16

type scanner struct {
	data     []byte
	pos      int
	maxDepth int
	dups     bool
	keys     [][]byte // keys of the open objects, innermost last
}

// scan checks that data is exactly one JSON value, at most maxDepth arrays
// and objects deep, and with no repeated keys when dups is set.
func scan(data []byte, maxDepth int, dups bool) error {
	s := scanner{data: data, maxDepth: maxDepth, dups: dups}
	s.skipSpace()
	if err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.syntax("data after the JSON value")
	}
	return nil
}

func (s *scanner) syntax(msg string) *scanError {
	return &scanError{kind: errSyntax, offset: s.pos, msg: msg + " at offset " + strconv.Itoa(s.pos)}
}

func (s *scanner) skipSpace() { s.pos = skipSpace(s.data, s.pos) }

// skipSpace returns the position of the first byte at or after pos in data
// that is not JSON white space.
func skipSpace(data []byte, pos int) int {
	for pos < len(data) {
		switch data[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// value reads one value at s.pos; depth is the number of arrays and
// objects that enclose it.
func (s *scanner) value(depth int) error {
	if s.pos >= len(s.data) {
		return s.syntax("unexpected end of JSON")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.syntax("invalid character " + strconv.QuoteRune(rune(s.data[s.pos])))
}

func (s *scanner) enter(depth int) error {
	if depth > s.maxDepth {
		return &scanError{kind: errDepth, offset: s.pos, msg: "nesting depth exceeds " + strconv.Itoa(s.maxDepth)}
	}
	return nil
}

func (s *scanner) object(depth int) error {
	if err := s.enter(depth); err != nil {
		return err
	}
	s.pos++ // {
	start := len(s.keys)
	defer func() { s.keys = s.keys[:start] }()
	var set map[string]struct{}
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.syntax("expected an object key")
		}
		key, err := s.str(s.dups)
		if err != nil {
			return err
		}
		if s.dups {
			if bytes.IndexByte(key, 0) >= 0 {
				// C decoders end the key there: "name\u0000" would be a
				// second "name" to them.
				return &scanError{kind: errDuplicate, offset: s.pos, msg: "key " + strconv.Quote(string(key)) + " holds U+0000"}
			}
			if set == nil && len(s.keys)-start >= foldSetThreshold {
				set = make(map[string]struct{}, 2*foldSetThreshold)
				for _, k := range s.keys[start:] {
					set[fold(string(k))] = struct{}{}
				}
			}
			dup := false
			if set != nil {
				f := fold(string(key))
				_, dup = set[f]
				set[f] = struct{}{}
			} else {
				for _, k := range s.keys[start:] {
					if bytes.EqualFold(k, key) {
						dup = true
						break
					}
				}
			}
			if dup {
				return &scanError{kind: errDuplicate, offset: s.pos, msg: "duplicate key " + strconv.Quote(string(key))}
			}
			s.keys = append(s.keys, key)
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntax("expected ':' after an object key")
		}
		s.pos++
		s.skipSpace()
		if err := s.value(depth); err != nil {
			if se, ok := err.(*scanError); ok && se.kind != errSyntax {
				se.ptr = append(se.ptr, string(key))
			}
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end of JSON")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or '}' in an object")
		}
	}
}

func (s *scanner) array(depth int) error {
	if err := s.enter(depth); err != nil {
		return err
	}
	s.pos++ // [
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := s.value(depth); err != nil {
			if se, ok := err.(*scanError); ok && se.kind != errSyntax {
				se.ptr = append(se.ptr, strconv.Itoa(i))
			}
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end of JSON")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or ']' in an array")
		}
	}
}

// str reads a string and, when decode is set, returns its decoded value.
// Strings without escapes — nearly all of them — are returned as a slice
// of the input whether or not decode is set.
func (s *scanner) str(decode bool) ([]byte, error) {
	start := s.pos
	s.pos++ // "
	escaped := false
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if !escaped || !decode {
				return s.data[start+1 : s.pos-1], nil
			}
			// Decode exactly as encoding/json does (invalid UTF-8 and
			// lone surrogates become U+FFFD), so keys compare as the
			// backend's decoder would see them.
			var v string
			if err := json.Unmarshal(s.data[start:s.pos], &v); err != nil {
				return nil, s.syntax("invalid string")
			}
			return []byte(v), nil
		case c == '\\':
			escaped = true
			if s.pos+1 >= len(s.data) {
				return nil, s.syntax("unexpected end of JSON")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) {
					return nil, s.syntax("unexpected end of JSON")
				}
				for _, h := range s.data[s.pos+2 : s.pos+6] {
					if !isHex(h) {
						return nil, s.syntax("invalid \\u escape")
					}
				}
				s.pos += 6
			default:
				return nil, s.syntax("invalid escape")
			}
		case c < 0x20:
			return nil, s.syntax("control character in a string")
		default:
			s.pos++
		}
	}
	return nil, s.syntax("unexpected end of JSON")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		s.digits()
	default:
		return s.syntax("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.syntax("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// member is one member of an object: its key, decoded when it has
// escapes, and its raw value; both are slices of the scanned input (the
// value without surrounding white space) unless the key was decoded.
type member struct {
	key   []byte
	value json.RawMessage
}

// objectMembers splits data, which scan has accepted and which starts with
// '{', into its members, appending them to buf. It does not check for
// repeated keys.
func objectMembers(data []byte, buf []member) []member {
	s := scanner{data: data, maxDepth: maxScanDepth}
	s.skipSpace()
	s.pos++ // {
	out := buf[:0]
	for {
		s.skipSpace()
		if s.pos >= len(data) || s.data[s.pos] == '}' {
			return out
		}
		key, _ := s.str(true)
		s.skipSpace()
		s.pos++ // :
		s.skipSpace()
		start := s.pos
		_ = s.value(0)
		out = append(out, member{key: key, value: data[start:s.pos]})
		s.skipSpace()
		if s.pos < len(data) && s.data[s.pos] == ',' {
			s.pos++
		}
	}
}

// fold returns the case-folded form of s: every rune replaced by the
// smallest rune of its Unicode simple-folding orbit, so that two keys that
// strings.EqualFold calls equal (K and the Kelvin sign included) fold alike.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}
