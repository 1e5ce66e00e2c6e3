package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

const (
	spiffeScheme       = "spiffe://"
	maxSPIFFEIDBytes   = 2048 // SPIFFE-ID spec §2.3
	maxTrustDomainSize = 255
)

// CheckSPIFFEID reports whether id is a workload SPIFFE ID as the SPIFFE-ID
// specification defines it: "spiffe://", a trust domain of lowercase
// letters, digits, '.', '-' and '_', then a non-empty path of segments of
// letters, digits, '.', '-' and '_' that are neither empty, "." nor "..".
// That excludes ports, userinfo, queries, fragments, percent-encoding and
// a bare trust domain, which names no workload.
func CheckSPIFFEID(id string) error {
	if len(id) > maxSPIFFEIDBytes {
		return fmt.Errorf("SPIFFE ID longer than %d bytes", maxSPIFFEIDBytes)
	}
	rest, ok := strings.CutPrefix(id, spiffeScheme)
	if !ok {
		return fmt.Errorf("SPIFFE ID %q does not start with %s", id, spiffeScheme)
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" {
		return fmt.Errorf("SPIFFE ID %q has no trust domain", id)
	}
	if len(td) > maxTrustDomainSize {
		return fmt.Errorf("SPIFFE ID trust domain longer than %d bytes", maxTrustDomainSize)
	}
	for i := range len(td) {
		if c := td[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("SPIFFE ID %q: trust domain has %q (port, userinfo and uppercase are not allowed)", id, c)
		}
	}
	if path == "" {
		return fmt.Errorf("SPIFFE ID %q has no path: a trust domain names no workload", id)
	}
	for seg := range strings.SplitSeq(path, "/") {
		switch seg {
		case "":
			return fmt.Errorf("SPIFFE ID %q has an empty path segment", id)
		case ".", "..":
			return fmt.Errorf("SPIFFE ID %q has a relative path segment", id)
		}
		for i := range len(seg) {
			if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fmt.Errorf("SPIFFE ID %q: path has %q (query, fragment and percent-encoding are not allowed)", id, c)
			}
		}
	}
	return nil
}

// SPIFFEFromCert returns the SPIFFE ID of an X.509-SVID, the client
// certificate of an mTLS connection. Per the X.509-SVID specification the
// certificate must carry exactly one URI SAN, that URI a valid SPIFFE ID,
// and must not be a CA. Errors have code CertSPIFFEID. The certificate
// chain itself is verified by the TLS stack, not here.
func SPIFFEFromCert(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fail(CertSPIFFEID, errors.New("no client certificate"))
	}
	if cert.IsCA {
		return "", fail(CertSPIFFEID, errors.New("certificate is a CA, not a workload SVID"))
	}
	if n := len(cert.URIs); n != 1 {
		return "", fail(CertSPIFFEID, fmt.Errorf("certificate has %d URI SANs, want exactly one", n))
	}
	u := cert.URIs[0]
	// The URL parser splits userinfo, port, query and fragment out of the
	// text; rebuilding the string lets CheckSPIFFEID see and refuse them.
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", fail(CertSPIFFEID, fmt.Errorf("URI SAN %q is not a SPIFFE ID", u.Redacted()))
	}
	id := u.String()
	if err := CheckSPIFFEID(id); err != nil {
		return "", fail(CertSPIFFEID, err)
	}
	return id, nil
}
