package policy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		name, s, pattern string
		want             bool
		wantErr          bool
	}{
		{name: "literal", s: "/etc/passwd", pattern: "/etc/passwd", want: true},
		{name: "star within a segment", s: "/data/a.csv", pattern: "/data/*.csv", want: true},
		{name: "star stops at slash", s: "/data/x/a.csv", pattern: "/data/*.csv", want: false},
		{name: "double star crosses slashes", s: "/data/x/y/a.csv", pattern: "/data/**.csv", want: true},
		{name: "double star slash matches zero segments", s: "/data/a.csv", pattern: "/data/**/*.csv", want: true},
		{name: "double star slash matches many segments", s: "/data/x/y/a.csv", pattern: "/data/**/*.csv", want: true},
		{name: "double star slash needs the slash", s: "/dataa.csv", pattern: "/data/**/*.csv", want: false},
		{name: "question mark is one character", s: "a1", pattern: "a?", want: true},
		{name: "question mark is not a slash", s: "a/", pattern: "a?", want: false},
		{name: "question mark is one rune", s: "aé", pattern: "a?", want: true},
		{name: "anchored at both ends", s: "x/etc/passwd/y", pattern: "/etc/passwd", want: false},
		{name: "regexp metacharacters are literal", s: "a.b+c", pattern: "a.b+c", want: true},
		{name: "dot is not a wildcard", s: "axb", pattern: "a.b", want: false},
		{name: "escaped star", s: "a*", pattern: `a\*`, want: true},
		{name: "escaped star is literal", s: "ab", pattern: `a\*`, want: false},
		{name: "newline matched by double star", s: "a\nb", pattern: "a**b", want: true},
		{name: "empty pattern matches empty", s: "", pattern: "", want: true},
		{name: "trailing escape", s: "a", pattern: `a\`, wantErr: true},
		{name: "pattern too long", s: "a", pattern: strings.Repeat("a", 1025), wantErr: true},
		{name: "invalid utf-8 pattern", s: "a", pattern: "\xff", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.Glob(tt.s, tt.pattern)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Glob(%q, %q) error = %v, want error %v", tt.s, tt.pattern, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Glob(%q, %q) = %v, want %v", tt.s, tt.pattern, got, tt.want)
			}
		})
	}
}

func TestCIDRContains(t *testing.T) {
	tests := []struct {
		name, cidr, ip string
		want, wantErr  bool
	}{
		{name: "v4 inside", cidr: "10.0.0.0/8", ip: "10.1.2.3", want: true},
		{name: "v4 outside", cidr: "10.0.0.0/8", ip: "11.0.0.1"},
		{name: "non-canonical prefix", cidr: "10.1.2.3/8", ip: "10.200.0.1", want: true},
		{name: "host prefix", cidr: "192.0.2.1/32", ip: "192.0.2.1", want: true},
		{name: "v6 inside", cidr: "fd00::/8", ip: "fd12::1", want: true},
		{name: "v6 outside", cidr: "fd00::/8", ip: "fe80::1"},
		{name: "v4-mapped address against v4 prefix", cidr: "10.0.0.0/8", ip: "::ffff:10.0.0.1", want: true},
		{name: "v4 address against v4-mapped prefix", cidr: "::ffff:10.0.0.0/104", ip: "10.0.0.1", want: true},
		{name: "v4 against v6 prefix", cidr: "fd00::/8", ip: "10.0.0.1"},
		{name: "zone ignored", cidr: "fe80::/10", ip: "fe80::1%eth0", want: true},
		{name: "bad prefix", cidr: "10.0.0.0", ip: "10.0.0.1", wantErr: true},
		{name: "bad prefix length", cidr: "10.0.0.0/33", ip: "10.0.0.1", wantErr: true},
		{name: "bad address", cidr: "10.0.0.0/8", ip: "10.0.0", wantErr: true},
		{name: "hostname is not an address", cidr: "10.0.0.0/8", ip: "localhost", wantErr: true},
		{name: "empty address", cidr: "10.0.0.0/8", ip: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.CIDRContains(tt.cidr, tt.ip)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CIDRContains(%q, %q) error = %v, want error %v", tt.cidr, tt.ip, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("CIDRContains(%q, %q) = %v, want %v", tt.cidr, tt.ip, got, tt.want)
			}
		})
	}
}

// TestFunctionsInCEL checks the functions as rules see them, including
// that a malformed argument is an evaluation error that denies.
func TestFunctionsInCEL(t *testing.T) {
	tests := []struct {
		name, match string
		args        map[string]any
		wantEffect  event.Effect
		wantCode    string
	}{
		{name: "glob true", match: `glob(path, "/mcp/**")`, wantEffect: event.EffectAllow},
		{name: "glob false", match: `glob(path, "/other/*")`, wantEffect: event.EffectDeny},
		{name: "glob bad pattern fails closed", match: `glob(path, "/mcp\\")`, wantEffect: event.EffectDeny, wantCode: policy.DecisionEvalError},
		{name: "cidr true", match: `cidr_contains("10.0.0.0/8", string(args.ip))`, args: map[string]any{"ip": "10.9.9.9"}, wantEffect: event.EffectAllow},
		{name: "cidr false", match: `cidr_contains("10.0.0.0/8", string(args.ip))`, args: map[string]any{"ip": "8.8.8.8"}, wantEffect: event.EffectDeny},
		{name: "cidr bad address fails closed", match: `cidr_contains("10.0.0.0/8", string(args.ip))`, args: map[string]any{"ip": "10.0.0.1.evil"}, wantEffect: event.EffectDeny, wantCode: policy.DecisionEvalError},
		{name: "cidr bad prefix fails closed", match: `cidr_contains("10.0.0.0/99", host)`, wantEffect: event.EffectDeny, wantCode: policy.DecisionEvalError},
		{name: "starts_with_any true", match: `starts_with_any(path, ["/x", "/mcp"])`, wantEffect: event.EffectAllow},
		{name: "starts_with_any false", match: `starts_with_any(path, ["/x", "/y"])`, wantEffect: event.EffectDeny},
		{name: "starts_with_any empty list", match: `starts_with_any(path, [])`, wantEffect: event.EffectDeny},
		{name: "starts_with_any list from args", match: `starts_with_any(path, args.prefixes)`, args: map[string]any{"prefixes": []any{"/m"}}, wantEffect: event.EffectAllow},
		{name: "starts_with_any non-string prefix fails closed", match: `starts_with_any(path, args.prefixes)`, args: map[string]any{"prefixes": []any{int64(1)}}, wantEffect: event.EffectDeny, wantCode: policy.DecisionEvalError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "id: f\nrules:\n  - id: r\n    match: '" + tt.match + "'\n    effect: allow\n"
			p, err := policy.Parse("f.yaml", []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			d := p.Decide(context.Background(), &policy.Input{Path: "/mcp/v1", Host: "10.0.0.1", Args: tt.args})
			if d.Effect != tt.wantEffect || d.Code != tt.wantCode {
				t.Fatalf("decision %s code %q (%s), want %s code %q", d.Effect, d.Code, d.Reason, tt.wantEffect, tt.wantCode)
			}
		})
	}
}

func TestFunctionTypeErrors(t *testing.T) {
	tests := []struct{ name, match string }{
		{"glob on int", `glob(chain_depth, "*")`},
		{"cidr with list", `cidr_contains(chain, "10.0.0.1")`},
		{"starts_with_any with string", `starts_with_any(path, "/x")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "id: f\nrules:\n  - id: r\n    match: '" + tt.match + "'\n    effect: allow\n"
			if _, err := policy.Parse("f.yaml", []byte(y)); err == nil {
				t.Fatal("Parse accepted a mistyped call")
			}
		})
	}
}
