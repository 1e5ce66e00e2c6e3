package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// KeyID names a checkpoint public key: "ed25519:" and the first 16 hex
// digits of its SHA-256. Every instance that signs checkpoints (enforcers,
// correlators) and `rampart verify` name keys this way.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// LoadSigner reads a PEM PKCS#8 Ed25519 private key (`rampart keygen` writes
// one) from path, or, when path is empty, generates an ephemeral key: the
// chain is then still checked, but no one else can verify its signatures.
func LoadSigner(path string) (Signer, error) {
	var key ed25519.PrivateKey
	if path == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return Signer{}, err
		}
		key = k
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return Signer{}, fmt.Errorf("chain: checkpoint key: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return Signer{}, fmt.Errorf("chain: checkpoint key %s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return Signer{}, fmt.Errorf("chain: checkpoint key %s: %w", path, err)
		}
		var ok bool
		if key, ok = k.(ed25519.PrivateKey); !ok {
			return Signer{}, fmt.Errorf("chain: checkpoint key %s is not Ed25519", path)
		}
	}
	return Signer{KeyID: KeyID(key.Public().(ed25519.PublicKey)), Key: key}, nil
}

// LoadPublicKeys reads PEM public keys (PKIX, Ed25519) from files, by key id.
func LoadPublicKeys(paths []string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("chain: %w", err)
		}
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("chain: %s: %w", p, err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("chain: %s: not an Ed25519 key", p)
			}
			keys[KeyID(pub)] = pub
		}
	}
	if len(keys) == 0 && len(paths) > 0 {
		return nil, errors.New("chain: no public keys found")
	}
	return keys, nil
}
