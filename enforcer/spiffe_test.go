package enforcer

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		name    string
		uris    []string
		want    string
		wantErr bool
	}{
		{"none", nil, "", false},
		{"other URI only", []string{"https://acme.test/x"}, "", false},
		{"one", []string{"https://acme.test/x", "spiffe://acme.test/agent/planner"}, "spiffe://acme.test/agent/planner", false},
		{"two", []string{"spiffe://acme.test/a", "spiffe://acme.test/b"}, "", true},
		{"query", []string{"spiffe://acme.test/a?x=1"}, "", true},
		{"port", []string{"spiffe://acme.test:8443/a"}, "", true},
		{"dot segment", []string{"spiffe://acme.test/a/../b"}, "", true},
		{"trailing slash", []string{"spiffe://acme.test/a/"}, "", true},
		{"upper-case trust domain", []string{"spiffe://ACME.test/a"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{}
			for _, s := range tt.uris {
				u, err := url.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				c.URIs = append(c.URIs, u)
			}
			got, err := SPIFFEID(c)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("SPIFFEID = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
