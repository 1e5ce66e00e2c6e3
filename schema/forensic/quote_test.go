package forensic

import (
	"errors"
	"strings"
	"testing"
)

// unquote reads a ClickHouse string literal from the start of q as the
// server's lexer does (quote, backslash escapes, a doubled quote) and
// returns its value and what follows it.
func unquote(q string) (value, rest string, err error) {
	if !strings.HasPrefix(q, "'") {
		return "", "", errors.New("no opening quote")
	}
	var b strings.Builder
	for i := 1; i < len(q); i++ {
		switch c := q[i]; c {
		case '\'':
			if i+1 < len(q) && q[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), q[i+1:], nil
		case '\\':
			if i+1 == len(q) {
				return "", "", errors.New("dangling backslash")
			}
			i++
			switch e := q[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0':
				b.WriteByte(0)
			default:
				b.WriteByte(e)
			}
		case 0:
			return "", "", errors.New("raw NUL in literal")
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated literal")
}

// FuzzQuote: whatever the input, the literal reads back as exactly the
// input and ends exactly where Quote ended it, so nothing after it can be
// smuggled into the query.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "acme", "o'brien", `a\`, `\'`, `'; DROP TABLE x; --`, "a\x00b", "\n\r\t", `\\\'`, "''", "é\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		got, rest, err := unquote(q + " AND 1")
		if err != nil {
			t.Fatalf("Quote(%q) = %s: %v", s, q, err)
		}
		if got != s || rest != " AND 1" {
			t.Fatalf("Quote(%q) = %s reads back as %q, then %q", s, q, got, rest)
		}
		if strings.ContainsAny(q, "\x00\n\r") {
			t.Fatalf("Quote(%q) = %q holds a raw control byte", s, q)
		}
	})
}
