package subject

import (
	"strings"
	"testing"
)

func TestForEscapesEveryUnsafeByte(t *testing.T) {
	cases := []struct {
		name, tenant, want string
	}{
		{"plain", "acme", "rampart.v1.acme.decision"},
		{"empty is unidentified", "", "rampart.v1.~.decision"},
		{"dot injection", "acme.decision.>", "rampart.v1.acme~2Edecision~2E~3E.decision"},
		{"wildcard", "*", "rampart.v1.~2A.decision"},
		{"escape char itself", "~41", "rampart.v1.~7E41.decision"},
		{"space and unicode", "a b\u00e9", "rampart.v1.a~20b~C3~A9.decision"},
		{"nul", "a\x00", "rampart.v1.a~00.decision"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := For(tc.tenant, "decision")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("For(%q) = %q, want %q", tc.tenant, got, tc.want)
			}
			tenant, kind, err := Parse(got)
			if err != nil || tenant != tc.tenant || kind != "decision" {
				t.Fatalf("Parse(%q) = %q, %q, %v", got, tenant, kind, err)
			}
		})
	}
}

func TestTooLong(t *testing.T) {
	if _, err := For(strings.Repeat(".", 100), "request"); err != ErrTokenTooLong {
		t.Fatalf("err = %v, want ErrTokenTooLong", err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"other.v1.a.b", "rampart.v1.a", "rampart.v1.a.b.c", "rampart.v1.a~4.b", "rampart.v1.a~ZZ.b"} {
		if _, _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

// FuzzEscapeToken checks that no input yields a token with a separator or
// wildcard, and that escaping round-trips.
func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "acme", "a.b", "*", ">", "~", "~7E", "\xff\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := EscapeToken(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(tok, ".*> \t\r\n") || tok == "" {
			t.Fatalf("EscapeToken(%q) = %q is unsafe", s, tok)
		}
		back, err := UnescapeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
		}
	})
}
