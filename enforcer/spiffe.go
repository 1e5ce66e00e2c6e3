package enforcer

import (
	"crypto/tls"

	"github.com/rampart-io/rampart/enforcer/identity"
)

// peerSPIFFEID is the SPIFFE ID of a verified TLS client certificate, which
// must be an X.509-SVID by identity.SPIFFEFromCert's one rule: exactly one
// URI SAN, a valid workload SPIFFE ID, not a CA. An unverified certificate
// (none required and none presented, or TLS off) names no one.
func peerSPIFFEID(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", nil
	}
	return identity.SPIFFEFromCert(cs.VerifiedChains[0][0])
}
