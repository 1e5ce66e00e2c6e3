package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// JWKSPath is where the enforcer serves the public keys of its credentials.
const JWKSPath = "/.well-known/jwks.json"

// KeySet is the signing key and the keys published: the current one and,
// while a rotation is under way, the next and the retiring ones. Every
// published key also verifies, so a token signed by a key being retired
// stays good until it expires.
type KeySet struct {
	signer  crypto.Signer
	alg     jwa.SignatureAlgorithm
	kid     string
	signKey jwk.Key
	jwks    []byte // the published set, rendered once
	// verify holds the public half of every published key, by kid.
	verify map[string]publicKey
}

// publicKey is a published key as Verify uses it: its algorithm is the
// only one a token under its kid may name.
type publicKey struct {
	alg jwa.SignatureAlgorithm
	key crypto.PublicKey
}

// LoadKeys reads the signing key from keyFile and the keys published
// beside it: nextFile's (when set) and each of retiring's.
func LoadKeys(keyFile, nextFile string, retiring ...string) (*KeySet, error) {
	cur, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	var others []crypto.Signer
	for _, f := range append([]string{nextFile}, retiring...) {
		if f == "" {
			continue
		}
		k, err := readKey(f)
		if err != nil {
			return nil, err
		}
		others = append(others, k)
	}
	return NewKeySet(cur, others...)
}

// NewKeySet signs with signer and publishes its public key and those of
// others (keys being introduced or retired).
func NewKeySet(signer crypto.Signer, others ...crypto.Signer) (*KeySet, error) {
	ks := &KeySet{signer: signer, verify: map[string]publicKey{}}
	var err error
	if ks.signKey, ks.alg, err = privateJWK(signer); err != nil {
		return nil, err
	}
	ks.kid = ks.signKey.KeyID()
	set := jwk.NewSet()
	for _, s := range append([]crypto.Signer{signer}, others...) {
		pub, err := publicJWK(s)
		if err != nil {
			return nil, err
		}
		if _, dup := set.LookupKeyID(pub.KeyID()); dup {
			return nil, fmt.Errorf("credential: key %s published twice", pub.KeyID())
		}
		if err := set.AddKey(pub); err != nil {
			return nil, fmt.Errorf("credential: %w", err)
		}
		alg, _ := pub.Get(jwk.AlgorithmKey)
		ks.verify[pub.KeyID()] = publicKey{alg: alg.(jwa.SignatureAlgorithm), key: s.Public()}
	}
	if ks.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("credential: render JWKS: %w", err)
	}
	return ks, nil
}

// KeyID is the kid of the signing key.
func (ks *KeySet) KeyID() string { return ks.kid }

// Algorithm is the JWS algorithm of the signing key.
func (ks *KeySet) Algorithm() jwa.SignatureAlgorithm { return ks.alg }

// JWKS is the published key set, public keys only.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// Handler serves the published key set.
func (ks *KeySet) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		// Backends refresh within five minutes: the time a rotation must
		// wait between publishing a next key and signing with it.
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(ks.jwks)
	})
}

func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("credential: %s: no PEM PRIVATE KEY (PKCS#8) block", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("credential: %s: %w", file, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("credential: %s: not a signing key", file)
	}
	if _, _, err := privateJWK(s); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, file)
	}
	return s, nil
}

// privateJWK is s as a jwk.Key with its kid and alg set.
func privateJWK(s crypto.Signer) (jwk.Key, jwa.SignatureAlgorithm, error) {
	var alg jwa.SignatureAlgorithm
	switch k := s.(type) {
	case ed25519.PrivateKey:
		alg = jwa.EdDSA
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, "", errors.New("credential: an ECDSA key must be P-256 (ES256)")
		}
		alg = jwa.ES256
	default:
		return nil, "", fmt.Errorf("credential: %T keys are not supported (Ed25519 or P-256)", s)
	}
	key, err := jwk.FromRaw(s)
	if err != nil {
		return nil, "", fmt.Errorf("credential: %w", err)
	}
	kid, err := thumbprint(key)
	if err != nil {
		return nil, "", err
	}
	_ = key.Set(jwk.KeyIDKey, kid)
	_ = key.Set(jwk.AlgorithmKey, alg)
	return key, alg, nil
}

// publicJWK is the public half of s as published: kid, alg, use sig.
func publicJWK(s crypto.Signer) (jwk.Key, error) {
	priv, alg, err := privateJWK(s)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	_ = pub.Set(jwk.KeyIDKey, priv.KeyID())
	_ = pub.Set(jwk.AlgorithmKey, alg)
	_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
	return pub, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of key's public half,
// base64url: a kid every instance derives alike from the same key.
func thumbprint(key jwk.Key) (string, error) {
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return "", fmt.Errorf("credential: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("credential: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
