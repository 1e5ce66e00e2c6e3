// Package subject maps events to NATS subjects and back.
//
// The scheme is rampart.v1.<tenant>.<kind>, for example
// rampart.v1.acme.decision. Tokens that come from requests (tenant) are
// escaped so that no input can add a token separator (.) or a wildcard
// (*, >) to a subject: every byte outside [A-Za-z0-9_-] becomes ~XX (hex),
// and the empty tenant (an unidentified caller) is the lone token "~",
// which no escaped name can produce.
package subject

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the subject prefix of event model v1; the stream captures Prefix+">".
const Prefix = "rampart.v1."

// MaxTokenLen bounds an escaped token, keeping subjects well under NATS limits.
const MaxTokenLen = 192

// ErrTokenTooLong is returned when an escaped token would exceed MaxTokenLen.
var ErrTokenTooLong = errors.New("subject: token too long")

const hexDigits = "0123456789ABCDEF"

// EscapeToken returns s as a single safe subject token.
func EscapeToken(s string) (string, error) {
	if s == "" {
		return "~", nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('~')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
		if b.Len() > MaxTokenLen {
			return "", ErrTokenTooLong
		}
	}
	return b.String(), nil
}

// UnescapeToken reverses EscapeToken.
func UnescapeToken(tok string) (string, error) {
	if tok == "~" {
		return "", nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '~' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("subject: truncated escape in %q", tok)
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("subject: bad escape in %q", tok)
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// For returns the subject an event of the given tenant and kind is published on.
func For(tenant, kind string) (string, error) {
	t, err := EscapeToken(tenant)
	if err != nil {
		return "", err
	}
	k, err := EscapeToken(kind)
	if err != nil {
		return "", err
	}
	return Prefix + t + "." + k, nil
}

// Parse splits a v1 subject into tenant and kind.
func Parse(subj string) (tenant, kind string, err error) {
	rest, ok := strings.CutPrefix(subj, Prefix)
	if !ok {
		return "", "", fmt.Errorf("subject: %q is not a v1 event subject", subj)
	}
	t, k, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(k, ".") {
		return "", "", fmt.Errorf("subject: %q must have exactly tenant and kind tokens", subj)
	}
	if tenant, err = UnescapeToken(t); err != nil {
		return "", "", err
	}
	if kind, err = UnescapeToken(k); err != nil {
		return "", "", err
	}
	return tenant, kind, nil
}
