package chain

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/rampart-io/rampart/schema/event"
)

// Linker numbers and chains the events of one instance epoch. It is not
// safe for concurrent use: the publisher calls it under its own lock, in
// publish order.
type Linker struct {
	instance, epoch string
	seq             uint64
	head            Hash
	started         bool
}

// NewLinker starts a chain for instance in a new epoch.
func NewLinker(instance, epoch string) *Linker {
	return &Linker{instance: instance, epoch: epoch}
}

// Epoch is the linker's epoch.
func (l *Linker) Epoch() string { return l.epoch }

// Seq is the sequence number of the last linked event (0 before any).
func (l *Linker) Seq() uint64 { return l.seq }

// Link stamps e with the instance, epoch, next sequence number and the
// previous event's hash, and makes e the head. e must be complete: any
// later change to it breaks the chain.
func (l *Linker) Link(e *event.Event) {
	l.seq++
	e.Instance, e.Epoch, e.Seq = l.instance, l.epoch, l.seq
	e.Time = Truncate(e.Time)
	e.Prev = ""
	if l.started {
		e.Prev = l.head.String()
	}
	l.head, l.started = Of(e), true
}

// Mark is a linker's position: the head of its chain.
type Mark struct {
	seq     uint64
	head    Hash
	started bool
}

// Mark returns the current head, for Rewind.
func (l *Linker) Mark() Mark { return Mark{l.seq, l.head, l.started} }

// Rewind makes m the head again, forgetting the events linked since: for
// an event JetStream reported as a duplicate of one already recorded, which
// must not take a sequence number, or the chain would show it as deleted.
func (l *Linker) Rewind(m Mark) { l.seq, l.head, l.started = m.seq, m.head, m.started }

// Signer signs checkpoints.
type Signer struct {
	KeyID string
	Key   ed25519.PrivateKey
}

// Sign completes checkpoint event e (already linked except for its
// signature) and re-links it: the signature covers the event's hash with
// the signature left out, and the chain continues from the signed event.
func (l *Linker) Checkpoint(e *event.Event, s Signer, unrecorded []uint64) {
	e.Kind = event.KindCheckpoint
	e.Checkpoint = &event.Checkpoint{KeyID: s.KeyID, Unrecorded: unrecorded}
	l.Link(e)
	digest := of(e, true)
	e.Checkpoint.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.Key, digest[:]))
	l.head = Of(e)
}

// ErrBadSignature is returned for a checkpoint whose signature does not verify.
var ErrBadSignature = errors.New("chain: checkpoint signature does not verify")

// VerifyCheckpoint checks e's signature with the public key named by its key id.
func VerifyCheckpoint(e *event.Event, keys map[string]ed25519.PublicKey) error {
	if e.Checkpoint == nil {
		return errors.New("chain: not a checkpoint")
	}
	pub, ok := keys[e.Checkpoint.KeyID]
	if !ok {
		return fmt.Errorf("chain: checkpoint signed by unknown key %q", e.Checkpoint.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Checkpoint.Signature)
	if err != nil {
		return ErrBadSignature
	}
	digest := of(e, true)
	if !ed25519.Verify(pub, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}
