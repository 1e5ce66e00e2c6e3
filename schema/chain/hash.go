// Package chain makes each instance's events (an enforcer's, a
// correlator's) tamper-evident. Every event carries its instance's epoch, a
// dense sequence number, and the hash of the previous event; periodic
// checkpoints sign the head of the chain with Ed25519. Check then finds exactly which sequence numbers of a stored
// chain were deleted, modified, reordered, truncated or spliced in.
//
// The hash is over a canonical binary form of the columns an event is
// stored in (Columns, from the events table's one definition, ddl.Events):
// the row as ClickHouse's RowBinary format writes it, after a version
// prefix. So it can be recomputed from decoded events (Of) or straight from
// the bytes a RowBinary query returns (RowHash), which spares `rampart
// verify` building events at all. A column added to the event model joins
// as a new canonical form, whose form of an event without it is the
// previous form's, so stored records keep verifying.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Prefix marks the hash encoding in events.
const Prefix = "sha256:"

// Hash is a chain hash.
type Hash [sha256.Size]byte

// String is the form events carry: "sha256:<hex>".
func (h Hash) String() string { return Prefix + hex.EncodeToString(h[:]) }

// Truncate rounds t the way stored events keep time (microseconds, UTC), so
// hashes computed before storing and after reading agree.
func Truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// hasher is the reusable state of one hash: the canonical bytes, the row
// the columns read the event through, and where each form's columns start.
type hasher struct {
	buf    []byte
	row    ddl.Row
	starts []int
}

var hashers = sync.Pool{New: func() any {
	return &hasher{buf: make([]byte, 0, 2048), starts: make([]int, len(FormStarts))}
}}

// Of returns the chain hash of e. Absent sections hash like empty ones.
func Of(e *event.Event) Hash { return of(e, false) }

// of is Of, leaving the checkpoint signature out when withoutSignature is
// set (what the signature itself covers).
func of(e *event.Event, withoutSignature bool) Hash {
	w := hashers.Get().(*hasher)
	w.row = ddl.Row{Event: e}
	w.buf = append(w.buf[:0], forms[0]...)
	w.buf = binary.AppendUvarint(w.buf, uint64(e.V))
	head := len(w.buf)
	k := 0
	for i := range Columns {
		c := &Columns[i]
		for k < len(FormStarts) && i == FormStarts[k] {
			w.starts[k] = len(w.buf) - head
			k++
		}
		if withoutSignature && i == signature {
			continue
		}
		w.buf = c.AppendRowBinary(w.buf, &w.row)
	}
	for ; k < len(FormStarts); k++ {
		w.starts[k] = len(w.buf) - head
	}
	end, form := formOf(w.buf[head:], w.starts)
	copy(w.buf, forms[form])
	out := Hash(sha256.Sum256(w.buf[:head+end]))
	w.row = ddl.Row{}
	hashers.Put(w)
	return out
}
