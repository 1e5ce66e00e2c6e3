package enforcer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// SPIFFEID returns the SPIFFE ID of an X.509-SVID: its one spiffe:// URI
// SAN, or "" when it has none. A certificate with several spiffe:// URIs,
// or one with a query, fragment, user info, port or empty path segments,
// is an error (SPIFFE X.509-SVID §2, SPIFFE ID §2).
func SPIFFEID(cert *x509.Certificate) (string, error) {
	var id string
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, "spiffe") {
			continue
		}
		if id != "" {
			return "", errors.New("enforcer: certificate has more than one spiffe URI SAN")
		}
		switch {
		case u.Host == "", u.User != nil, u.Port() != "",
			u.RawQuery != "", u.Fragment != "", u.Opaque != "",
			strings.Contains(u.Path, "//"), strings.HasSuffix(u.Path, "/"),
			u.Host != strings.ToLower(u.Host):
			return "", fmt.Errorf("enforcer: malformed SPIFFE ID %q", u.String())
		}
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, "/"), "/") {
			if seg == "." || seg == ".." {
				return "", fmt.Errorf("enforcer: malformed SPIFFE ID %q", u.String())
			}
		}
		id = u.String()
	}
	return id, nil
}

// peerSPIFFEID is the SPIFFE ID of a verified TLS client certificate. An
// unverified certificate (none required and none presented, or TLS off)
// names no one.
func peerSPIFFEID(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", nil
	}
	return SPIFFEID(cs.VerifiedChains[0][0])
}
