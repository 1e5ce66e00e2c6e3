package enforcer

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// FuzzCanonicalPath: whatever path canonicalPath accepts reads the same to
// a backend that decodes it again, folds it to NFKC, or strips matrix
// parameters, as it does to the policy.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/mcp", "/mcp/../admin", "/mcp/..;/admin", "/a%2fb", "/%252e", "/%c0%ae", "/%ef%bc%8e", "/a/b/", "/é", "/a%20b", "/~x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || u.Opaque != "" {
			return
		}
		p := u.Path
		if canonicalPath(p, u.EscapedPath()) != nil || p == "" {
			return
		}
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if clean != p {
			t.Fatalf("accepted %q, which cleans to %q", p, clean)
		}
		if strings.ContainsAny(p, ";\\\x00") {
			t.Fatalf("accepted %q with a separator a backend may read", p)
		}
		if again, err := url.PathUnescape(p); err == nil && again != p {
			t.Fatalf("accepted %q, which decodes again to %q", p, again)
		}
		folded := norm.NFKC.String(p)
		for _, sep := range []string{"/", ".", "\\", ";", "%"} {
			if strings.Count(folded, sep) != strings.Count(p, sep) {
				t.Fatalf("accepted %q, whose NFKC form %q has other %q", p, folded, sep)
			}
		}
	})
}
