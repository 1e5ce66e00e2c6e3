package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCredentialObligationRefusals(t *testing.T) {
	rule := func(effect, obligation string) string {
		return "id: p\nrules:\n  - id: r\n    match: 'true'\n    effect: " + effect + "\n    obligations: {credential: " + obligation + "}\n"
	}
	for name, tc := range map[string]struct {
		yaml string
		code error
		want string
	}{
		"no audience":  {rule("allow", "{ttl: 1m}"), ErrInvalidValue, "audience is required"},
		"unknown key":  {rule("allow", "{audience: a, lifetime: 1m}"), ErrUnknownKey, "lifetime"},
		"bad ttl":      {rule("allow", "{audience: a, ttl: soon}"), ErrInvalidValue, "duration"},
		"tiny ttl":     {rule("allow", "{audience: a, ttl: 1ms}"), ErrInvalidValue, "under a second"},
		"scope string": {rule("allow", "{audience: a, scope: read}"), ErrSyntax, "list of scopes"},
		"scope space":  {rule("allow", "{audience: a, scope: ['a b']}"), ErrInvalidValue, "scope token"},
		"on deny":      {rule("deny", "{audience: a}"), ErrInvalidValue, "needs effect allow"},
		"on audit":     {rule("audit", "{audience: a}"), ErrInvalidValue, "needs effect allow"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.yaml))
			if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.code, tc.want)
			}
		})
	}
}

func TestCredentialObligationIsTheDecidingRules(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`id: p
rules:
  - id: crm
    match: 'tool == "crm_lookup"'
    effect: allow
    obligations: {credential: {audience: "https://crm", scope: [crm.read], ttl: 2m}}
  - id: rest
    match: 'true'
    effect: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(context.Background(), &Input{Tenant: "acme", Tool: "crm_lookup"})
	if c := d.Obligations.Credential; c == nil || c.Audience != "https://crm" || c.TTL != 2*time.Minute || len(c.Scope) != 1 || c.Scope[0] != "crm.read" {
		t.Fatalf("credential %+v", c)
	}
	if d := p.Decide(context.Background(), &Input{Tenant: "acme", Tool: "search"}); d.Obligations.Credential != nil {
		t.Errorf("another rule's decision carries %+v", d.Obligations.Credential)
	}
}
