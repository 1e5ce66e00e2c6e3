package enforcer

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"
)

// TestPeerSPIFFEIDIsStrict: the client certificate's SPIFFE ID is read by
// the one strict rule; each of these was accepted by the enforcer's own,
// laxer reading before.
func TestPeerSPIFFEIDIsStrict(t *testing.T) {
	tests := []struct {
		name string
		uris []string
		ca   bool
		want string // "" with an error
	}{
		{"one", []string{"spiffe://acme.test/agent/planner"}, false, "spiffe://acme.test/agent/planner"},
		{"bare trust domain", []string{"spiffe://acme.test"}, false, ""},
		{"encoded space", []string{"spiffe://acme.test/agent%20planner"}, false, ""},
		{"two URI SANs", []string{"https://acme.test/x", "spiffe://acme.test/agent/planner"}, false, ""},
		{"two SPIFFE IDs", []string{"spiffe://acme.test/a", "spiffe://acme.test/b"}, false, ""},
		{"a CA certificate", []string{"spiffe://acme.test/agent/planner"}, true, ""},
		{"no URI SAN", nil, false, ""},
		{"another scheme only", []string{"https://acme.test/x"}, false, ""},
		{"query", []string{"spiffe://acme.test/a?x=1"}, false, ""},
		{"fragment", []string{"spiffe://acme.test/a#x"}, false, ""},
		{"port", []string{"spiffe://acme.test:8443/a"}, false, ""},
		{"user info", []string{"spiffe://u@acme.test/a"}, false, ""},
		{"dot segment", []string{"spiffe://acme.test/a/../b"}, false, ""},
		{"trailing slash", []string{"spiffe://acme.test/a/"}, false, ""},
		{"upper-case trust domain", []string{"spiffe://ACME.test/a"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &x509.Certificate{IsCA: tt.ca}
			for _, s := range tt.uris {
				u, err := url.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				c.URIs = append(c.URIs, u)
			}
			got, err := peerSPIFFEID(&tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}})
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Fatalf("peerSPIFFEID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if id, err := peerSPIFFEID(&tls.ConnectionState{}); id != "" || err != nil {
		t.Errorf("no verified certificate: %q, %v", id, err)
	}
}
