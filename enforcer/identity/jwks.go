package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxJWKSBytes bounds a fetched JWKS; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3 requires
// 2048; smaller keys are skipped, never trusted).
const minRSABits = 2048

// verifyKey is one usable public key of a JWKS, already converted to its
// crypto type so verification does no per-token key conversion.
type verifyKey struct {
	alg string // the JWK "alg", or "" when the key does not restrict it
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether alg may be verified with k: the JWK's own "alg"
// if it has one, and always the algorithm family of the key type, so an
// RSA key is never used for an EC or EdDSA token and a P-384 key never for
// ES256.
func (k verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return alg == "ES256"
		case elliptic.P384():
			return alg == "ES384"
		case elliptic.P521():
			return alg == "ES512"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keySet is an immutable snapshot of an issuer's keys by kid.
type keySet struct {
	keys map[string]verifyKey
	raw  []byte // the JWKS document, to tell a changed set from a refetch
}

// parseKeySet keeps the keys a token may be verified with. Keys that can
// never verify a JWS here (encryption keys, symmetric keys, weak RSA,
// unknown curves, keys without kid) are skipped and named in skipped, so
// one odd key in an IdP's set does not disable the rest. A kid used twice
// is an error: which key it means would be a guess.
func parseKeySet(raw []byte) (set *keySet, skipped []string, err error) {
	parsed, err := jwk.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parse jwks: %w", err)
	}
	set = &keySet{keys: make(map[string]verifyKey, parsed.Len()), raw: raw}
	for i := range parsed.Len() {
		k, _ := parsed.Key(i)
		kid := k.KeyID()
		skip := func(why string) { skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %s", i, kid, why)) }
		if kid == "" {
			skip("no kid")
			continue
		}
		if use := k.KeyUsage(); use != "" && use != "sig" {
			skip("use is " + use)
			continue
		}
		if k.KeyType() == jwa.OctetSeq {
			skip("symmetric key")
			continue
		}
		alg := k.Algorithm().String()
		if alg != "" && !slices.Contains(supportedAlgorithms, alg) {
			skip("alg " + alg + " is not a supported signature algorithm")
			continue
		}
		pk, err := k.PublicKey()
		if err != nil {
			skip(err.Error())
			continue
		}
		var pub any
		if err := pk.Raw(&pub); err != nil {
			skip(err.Error())
			continue
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if p.N.BitLen() < minRSABits {
				skip(fmt.Sprintf("RSA key of %d bits", p.N.BitLen()))
				continue
			}
		case *ecdsa.PublicKey:
			if p.Curve != elliptic.P256() && p.Curve != elliptic.P384() && p.Curve != elliptic.P521() {
				skip("unsupported curve")
				continue
			}
		case ed25519.PublicKey:
		default:
			skip(fmt.Sprintf("key type %T cannot verify a signature", pub))
			continue
		}
		if _, dup := set.keys[kid]; dup {
			return nil, skipped, fmt.Errorf("jwks: kid %q is used twice", kid)
		}
		set.keys[kid] = verifyKey{alg: alg, pub: pub}
	}
	if len(set.keys) == 0 {
		return nil, skipped, fmt.Errorf("jwks: no usable signature key (skipped: %v)", skipped)
	}
	return set, skipped, nil
}

// keySource holds an issuer's current keys. A static source (jwks_file)
// never changes; a URL source refreshes on a schedule and on demand.
type keySource struct {
	issuer       string
	url          string // "" for a static set
	client       *http.Client
	refreshEvery time.Duration
	refetchEvery time.Duration
	now          func() time.Time
	log          *slog.Logger
	onChange     func() // called after a fetch replaced the keys

	set atomic.Pointer[keySet]

	mu       sync.Mutex
	last     time.Time     // start of the latest fetch
	inflight chan struct{} // closed when the running fetch ends; nil if none
}

// lookup returns the key named kid. An unknown kid on a URL source causes
// one refetch, unless one ran within refetchEvery: a rotated-in key is
// picked up at once, while a flood of forged kids costs at most one fetch
// per interval. life bounds the fetch (the Verifier's lifetime, not the
// request's, so one impatient client cannot waste the interval's fetch);
// ctx bounds the wait for it.
func (s *keySource) lookup(ctx, life context.Context, kid string) (verifyKey, bool) {
	if k, ok := s.set.Load().keys[kid]; ok {
		return k, true
	}
	if s.url == "" {
		return verifyKey{}, false
	}
	s.refresh(ctx, life, true)
	k, ok := s.set.Load().keys[kid]
	return k, ok
}

// refresh fetches the JWKS unless a fetch is running (then it waits for
// that one) or, when onDemand, one started within refetchEvery.
func (s *keySource) refresh(ctx, life context.Context, onDemand bool) {
	s.mu.Lock()
	if ch := s.inflight; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	now := s.now()
	if onDemand && now.Sub(s.last) < s.refetchEvery {
		s.mu.Unlock()
		return
	}
	s.last = now
	ch := make(chan struct{})
	s.inflight = ch
	s.mu.Unlock()

	if err := s.fetch(life); err != nil {
		s.log.Warn("identity: jwks refresh failed; keeping the current keys",
			"issuer", s.issuer, "url", s.url, "on_demand", onDemand, "error", err)
	}
	s.mu.Lock()
	s.inflight = nil
	s.mu.Unlock()
	close(ch)
}

// fetch downloads and installs the JWKS. A failed fetch leaves the current
// keys in place: an IdP outage must not log everyone out.
func (s *keySource) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", s.url, err)
	}
	if len(raw) > maxJWKSBytes {
		return fmt.Errorf("GET %s: jwks larger than %d bytes", s.url, maxJWKSBytes)
	}
	if cur := s.set.Load(); cur != nil && bytes.Equal(cur.raw, raw) {
		return nil
	}
	set, skipped, err := parseKeySet(raw)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		s.log.Info("identity: jwks keys skipped", "issuer", s.issuer, "url", s.url, "skipped", skipped)
	}
	s.set.Store(set)
	if s.onChange != nil {
		s.onChange()
	}
	return nil
}

// run refreshes the JWKS every refreshEvery until ctx ends.
func (s *keySource) run(ctx context.Context) {
	t := time.NewTicker(s.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx, ctx, false)
		}
	}
}

// newHTTPClient returns the JWKS client: bounded in time, and refusing a
// redirect that would leave https.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && !isLoopback(req.URL.Hostname()) {
				return fmt.Errorf("redirect to %s leaves https", req.URL.Redacted())
			}
			return nil
		},
	}
}
