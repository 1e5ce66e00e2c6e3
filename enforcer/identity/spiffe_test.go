package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/identity"
)

func TestCheckSPIFFEID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"spiffe://acme.example/agent/planner", true},
		{"spiffe://acme-prod_1.example/ns/default/sa/A.b-c_d", true},
		{"spiffe://td/x", true},
		{"spiffe://acme.example", false},
		{"spiffe://acme.example/", false},
		{"spiffe:///agent", false},
		{"spiffe://Acme.example/agent", false},
		{"spiffe://acme.example:443/agent", false},
		{"spiffe://user@acme.example/agent", false},
		{"spiffe://acme.example/agent?x=1", false},
		{"spiffe://acme.example/agent#frag", false},
		{"spiffe://acme.example/a//b", false},
		{"spiffe://acme.example/a/./b", false},
		{"spiffe://acme.example/a/../b", false},
		{"spiffe://acme.example/a%2Fb", false},
		{"spiffe://acme.example/a b", false},
		{"SPIFFE://acme.example/agent", false},
		{"https://acme.example/agent", false},
		{"spiffe://acme.example/" + strings.Repeat("a", 2048), false},
		{"spiffe://" + strings.Repeat("a", 256) + "/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.id[:min(len(tt.id), 60)], func(t *testing.T) {
			err := identity.CheckSPIFFEID(tt.id)
			if (err == nil) != tt.ok {
				t.Errorf("CheckSPIFFEID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
			}
		})
	}
}

// cert issues a self-signed leaf with the given URI SANs.
func cert(t *testing.T, isCA bool, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "workload"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSPIFFEFromCert(t *testing.T) {
	tests := []struct {
		name string
		cert *x509.Certificate
		want string // "" means an error with code CertSPIFFEID
	}{
		{name: "one SPIFFE ID", cert: cert(t, false, "spiffe://acme.example/agent/planner"), want: "spiffe://acme.example/agent/planner"},
		{name: "nil", cert: nil},
		{name: "no URI SAN", cert: cert(t, false)},
		{name: "two SPIFFE IDs", cert: cert(t, false, "spiffe://acme.example/a", "spiffe://acme.example/b")},
		{name: "SPIFFE ID and another URI", cert: cert(t, false, "spiffe://acme.example/a", "https://acme.example/")},
		{name: "https URI", cert: cert(t, false, "https://acme.example/agent")},
		{name: "with port", cert: cert(t, false, "spiffe://acme.example:8443/agent")},
		{name: "with userinfo", cert: cert(t, false, "spiffe://u@acme.example/agent")},
		{name: "with query", cert: cert(t, false, "spiffe://acme.example/agent?x=1")},
		{name: "with empty query", cert: cert(t, false, "spiffe://acme.example/agent?")},
		{name: "with fragment", cert: cert(t, false, "spiffe://acme.example/agent#x")},
		{name: "trust domain only", cert: cert(t, false, "spiffe://acme.example")},
		{name: "CA certificate", cert: cert(t, true, "spiffe://acme.example/agent")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := identity.SPIFFEFromCert(tt.cert)
			if tt.want == "" {
				checkCode(t, err, identity.CertSPIFFEID)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SPIFFEFromCert = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
