package chain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

func TestLoadSignerAndPublicKeysAgree(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	keyPath, pubPath := filepath.Join(dir, "k.key.pem"), filepath.Join(dir, "k.pub.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadPublicKeys([]string{pubPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys[s.KeyID]; !ok || !strings.HasPrefix(s.KeyID, "ed25519:") || len(s.KeyID) != len("ed25519:")+16 {
		t.Fatalf("signer key id %q not among %v", s.KeyID, keys)
	}
	e := &event.Event{V: 1, ID: "01J", Time: time.Now()}
	NewLinker("cor-a", "ep").Checkpoint(e, s, nil)
	if err := VerifyCheckpoint(e, keys); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSignerRefusesBadKeys(t *testing.T) {
	dir := t.TempDir()
	rsaLike := filepath.Join(dir, "junk.pem")
	os.WriteFile(rsaLike, []byte("not pem"), 0o600)
	for name, path := range map[string]string{"missing": filepath.Join(dir, "none"), "not pem": rsaLike} {
		if _, err := LoadSigner(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadPublicKeys([]string{rsaLike}); err == nil {
		t.Error("a file without keys loaded")
	}
	s, err := LoadSigner("")
	if err != nil || s.Key == nil {
		t.Fatalf("ephemeral key: %v", err)
	}
}

// A duplicate rewound out of the chain leaves no gap: the next event takes
// its sequence number and links to the event before it.
func TestRewindForgetsADuplicate(t *testing.T) {
	f := newFixture(t)
	l := NewLinker("cor-a", "ep1")
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	mk := func(id string) *event.Event {
		return &event.Event{V: 1, ID: id, Time: at, Kind: event.KindAlert, Tenant: "acme",
			Alert: &event.Alert{RuleID: "r", Title: "t", Severity: event.SeverityLow, Count: 1, Evidence: []string{"x"}}}
	}
	a, dup, b := mk("a"), mk("dup"), mk("b")
	l.Link(a)
	m := l.Mark()
	l.Link(dup)
	l.Rewind(m)
	l.Link(b)
	cp := &event.Event{V: 1, ID: "c", Time: at}
	l.Checkpoint(cp, f.signer, nil)
	if b.Seq != 2 || dup.Seq != 2 {
		t.Fatalf("seqs %d %d", dup.Seq, b.Seq)
	}
	if rep := Check([]*event.Event{a, b, cp}, Options{Keys: f.keys}); len(rep.Findings) != 0 {
		t.Fatalf("findings %v", rep.Findings)
	}
}
