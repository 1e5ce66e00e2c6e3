package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Functions CEL lacks that policies over paths, hosts and addresses need.
// Each returns a CEL error on malformed input, which fails the rule closed.

// maxGlobLen bounds a glob pattern, so a pattern cannot grow the compiled
// matcher without limit.
const maxGlobLen = 1024

// functions declares glob, cidr_contains and starts_with_any.
func functions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.Function("glob",
			cel.Overload("glob_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(s, pattern ref.Val) ref.Val {
					return globVal(s, pattern)
				}))),
		cel.Function("cidr_contains",
			cel.Overload("cidr_contains_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(cidr, ip ref.Val) ref.Val {
					return cidrContainsVal(cidr, ip)
				}))),
		cel.Function("starts_with_any",
			cel.Overload("starts_with_any_string_list", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(s, prefixes ref.Val) ref.Val {
					return startsWithAnyVal(s, prefixes)
				}))),
	}
}

func globVal(s, pattern ref.Val) ref.Val {
	str, ok1 := s.(types.String)
	pat, ok2 := pattern.(types.String)
	if !ok1 || !ok2 {
		return types.MaybeNoSuchOverloadErr(s)
	}
	ok, err := Glob(string(str), string(pat))
	if err != nil {
		return types.NewErr("glob: %v", err)
	}
	return types.Bool(ok)
}

func cidrContainsVal(cidr, ip ref.Val) ref.Val {
	c, ok1 := cidr.(types.String)
	a, ok2 := ip.(types.String)
	if !ok1 || !ok2 {
		return types.MaybeNoSuchOverloadErr(cidr)
	}
	ok, err := CIDRContains(string(c), string(a))
	if err != nil {
		return types.NewErr("cidr_contains: %v", err)
	}
	return types.Bool(ok)
}

func startsWithAnyVal(s, prefixes ref.Val) ref.Val {
	str, ok := s.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(s)
	}
	l, ok := prefixes.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(prefixes)
	}
	it := l.Iterator()
	for it.HasNext() == types.True {
		p, ok := it.Next().(types.String)
		if !ok {
			return types.NewErr("starts_with_any: prefixes must be strings")
		}
		if strings.HasPrefix(string(str), string(p)) {
			return types.True
		}
	}
	return types.False
}

// CIDRContains reports whether the prefix cidr ("10.0.0.0/8",
// "fd00::/8") contains the address ip. An IPv4-mapped IPv6 address
// ("::ffff:10.1.2.3") is matched as the IPv4 address it carries, so a
// caller cannot slip past an IPv4 rule by writing it in IPv6 form. A zone
// ("fe80::1%eth0") is ignored.
func CIDRContains(cidr, ip string) (bool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false, err
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false, err
	}
	a = a.WithZone("")
	switch {
	case p.Contains(a):
		return true, nil
	case a.Is4In6() && p.Addr().Is4():
		return p.Contains(a.Unmap()), nil
	case a.Is4() && p.Addr().Is4In6() && p.Bits() >= 96:
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Contains(a), nil
	}
	return false, nil
}

// Glob reports whether name matches pattern. In a pattern, `*` matches
// any run of characters except '/', `?` one character except '/', `**`
// any run including '/', and `**/` zero or more whole path segments (so
// "/data/**/x" matches "/data/x" and "/data/a/b/x"); `\` escapes the next
// character. There are no character classes. Matching is linear in the
// name (RE2), and compiled patterns are cached.
func Glob(name, pattern string) (bool, error) {
	re, err := globRegexp(pattern)
	if err != nil {
		return false, err
	}
	return re.MatchString(name), nil
}

// globCache holds compiled patterns; rules use a handful of constant
// patterns, so a small bound is plenty, and past it patterns compile per
// call rather than grow memory.
var globCache struct {
	sync.RWMutex
	m map[string]*regexp.Regexp
}

const maxGlobCache = 1024

func globRegexp(pattern string) (*regexp.Regexp, error) {
	globCache.RLock()
	re, ok := globCache.m[pattern]
	globCache.RUnlock()
	if ok {
		return re, nil
	}
	re, err := compileGlob(pattern)
	if err != nil {
		return nil, err
	}
	globCache.Lock()
	if globCache.m == nil {
		globCache.m = make(map[string]*regexp.Regexp)
	}
	if len(globCache.m) < maxGlobCache {
		globCache.m[pattern] = re
	}
	globCache.Unlock()
	return re, nil
}

func compileGlob(pattern string) (*regexp.Regexp, error) {
	if len(pattern) > maxGlobLen {
		return nil, fmt.Errorf("pattern longer than %d bytes", maxGlobLen)
	}
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '\\':
			if i+1 == len(pattern) {
				return nil, fmt.Errorf("pattern %q ends in an escape", pattern)
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case '?':
			b.WriteString(`[^/]`)
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				i++
				if i+1 < len(pattern) && pattern[i+1] == '/' {
					i++
					b.WriteString(`(?:.*/)?`)
				} else {
					b.WriteString(`.*`)
				}
				continue
			}
			b.WriteString(`[^/]*`)
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString(`)$`)
	return regexp.Compile(b.String())
}
