package identity_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/enforcer/identity"
)

// load decodes a testdata/config file strictly, defaults and validates it.
func load(t *testing.T, name string) (identity.Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	var c identity.Config
	if err := configfile.Decode(data, &c); err != nil {
		return c, err
	}
	c.SetDefaults()
	return c, c.Validate()
}

func TestConfigGood(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		c, err := load(t, "single.good.yml")
		if err != nil {
			t.Fatal(err)
		}
		// The file spells out every default, so it equals the defaults of
		// the bare minimum plus the one required claim.
		def := identity.Config{IssuerConfig: identity.IssuerConfig{Issuer: c.Issuer, Audience: c.Audience, JWKSURL: c.JWKSURL, RequiredClaims: []string{"tenant"}}}
		def.SetDefaults()
		if got, want := c.IssuerConfigs(), def.IssuerConfigs(); !slices.EqualFunc(got, want, eqIssuer) {
			t.Errorf("issuer = %+v, want the defaults %+v", got, want)
		}
		if c.MaxTokenBytes != identity.DefaultMaxTokenBytes || c.CacheSize != def.CacheSize || c.CacheTTL != def.CacheTTL || c.MaxChainDepth != def.MaxChainDepth {
			t.Errorf("config = %+v, want defaults", c)
		}
	})
	t.Run("multi", func(t *testing.T) {
		c, err := load(t, "multi.good.yml")
		if err != nil {
			t.Fatal(err)
		}
		is := c.IssuerConfigs()
		if len(is) != 2 || is[0].JWKSRefreshInterval != identity.DefaultJWKSRefreshInterval || is[1].ClockSkew != 5*time.Second ||
			!slices.Equal(is[1].Algorithms, []string{"ES256", "EdDSA"}) || !slices.Equal(is[0].TokenTypes, identity.DefaultTokenTypes) {
			t.Errorf("issuers = %+v", is)
		}
		if c.Issuer != "" || c.Algorithms != nil || c.ClockSkew != 0 {
			t.Errorf("the top level was defaulted next to issuers: %+v", c)
		}
		c.ResolvePaths("/etc/rampart")
		if got := c.Issuers[1].JWKSFile; got != "/etc/rampart/spire-jwks.json" {
			t.Errorf("jwks_file = %q after ResolvePaths", got)
		}
	})
	t.Run("loopback http", func(t *testing.T) {
		if _, err := load(t, "loopback.good.yml"); err != nil {
			t.Fatal(err)
		}
	})
}

func eqIssuer(a, b identity.IssuerConfig) bool {
	return a.Issuer == b.Issuer && a.Audience == b.Audience && a.JWKSFile == b.JWKSFile && a.JWKSURL == b.JWKSURL &&
		a.JWKSRefreshInterval == b.JWKSRefreshInterval && a.JWKSRefetchInterval == b.JWKSRefetchInterval &&
		slices.Equal(a.Algorithms, b.Algorithms) && a.ClockSkew == b.ClockSkew && slices.Equal(a.RequiredClaims, b.RequiredClaims) &&
		slices.Equal(a.TokenTypes, b.TokenTypes) && a.RequireTokenType == b.RequireTokenType
}

func TestConfigBad(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{"hmac.bad.yml", `algorithm "HS256" is not allowed`},
		{"none.bad.yml", `algorithm "none" is not allowed`},
		{"plain-http.bad.yml", "must be https"},
		{"both-jwks.bad.yml", "exactly one of jwks_file and jwks_url"},
		{"no-audience.bad.yml", "audience is required"},
		{"skew.bad.yml", "clock_skew must be at most"},
		{"refresh-file.bad.yml", "apply to jwks_url only"},
		{"refetch-small.bad.yml", "must be at least"},
		{"token-bytes.bad.yml", "max_token_bytes must be positive"},
		{"typo.bad.yml", "auddience"},
		{"mixed.bad.yml", "top-level issuer fields must be unset"},
		{"duplicate-issuer.bad.yml", `issuers[1]: issuer "i" is listed twice`},
		{"required-twice.bad.yml", "listed twice"},
		{"url-credentials.bad.yml", "without credentials"},
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "config", "*.bad.yml"))
	if len(files) != len(tests) {
		t.Errorf("%d bad fixtures, %d cases: every fixture needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
