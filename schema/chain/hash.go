// Package chain makes each enforcer instance's events tamper-evident. Every
// event carries its instance's epoch, a dense sequence number, and the hash
// of the previous event; periodic checkpoints sign the head of the chain
// with Ed25519. Check then finds exactly which sequence numbers of a stored
// chain were deleted, modified, reordered, truncated or spliced in.
//
// The hash is over a canonical binary form of the columns an event is
// stored in (Columns): the row as ClickHouse's RowBinary format writes it,
// after a version prefix. So it can be recomputed from decoded events (Of)
// or straight from the bytes a RowBinary query returns (RowHash), which
// spares `rampart verify` building events at all. Columns added to the
// event model must be added here, as a new canonical version whose form of
// an event without them is the previous version's (ExtColumns).
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// Prefix marks the hash encoding in events.
const Prefix = "sha256:"

// canonicalV2 and canonicalV3 start every hashed form: v3 for an event
// with a value in ExtColumns, v2 (which knew none of them) otherwise.
const (
	canonicalV2 = "rampart-chain-v2\x00"
	canonicalV3 = "rampart-chain-v3\x00"
)

// Hash is a chain hash.
type Hash [sha256.Size]byte

// String is the form events carry: "sha256:<hex>".
func (h Hash) String() string { return Prefix + hex.EncodeToString(h[:]) }

// Truncate rounds t the way stored events keep time (microseconds, UTC), so
// hashes computed before storing and after reading agree.
func Truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

type hasher struct{ buf []byte }

var hashers = sync.Pool{New: func() any { return &hasher{buf: make([]byte, 0, 2048)} }}

// The encodings of RowBinary: strings and array lengths are prefixed with
// their length as a uvarint, integers are little-endian.
func (w *hasher) str(s string) {
	w.count(len(s))
	w.buf = append(w.buf, s...)
}

func (w *hasher) count(n int)  { w.buf = binary.AppendUvarint(w.buf, uint64(n)) }
func (w *hasher) u64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }
func (w *hasher) i32(v int32)  { w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(v)) }

// Of returns the chain hash of e. Absent sections hash like empty ones, and
// the checkpoint signature is excluded when withoutSignature is set.
func Of(e *event.Event) Hash { return of(e, false) }

func of(e *event.Event, withoutSignature bool) Hash {
	w := hashers.Get().(*hasher)
	w.canonical(e, withoutSignature)
	out := Hash(sha256.Sum256(w.buf))
	hashers.Put(w)
	return out
}

// canonical writes e's canonical form to w.buf, field by field in the order
// of Columns.
func (w *hasher) canonical(e *event.Event, withoutSignature bool) {
	ext := extOf(e)
	version := canonicalV2
	if !ext.empty() {
		version = canonicalV3
	}
	w.buf = append(w.buf[:0], version...)
	w.buf = binary.AppendUvarint(w.buf, uint64(e.V))
	w.str(e.ID)
	w.str(string(e.Kind))
	w.u64(uint64(Truncate(e.Time).UnixMicro()))
	w.str(e.Tenant)
	w.str(e.Instance)
	w.str(e.Epoch)
	w.u64(e.Seq)
	w.str(e.Prev)
	w.str(e.RequestID)
	w.str(e.Trace.TraceParent)
	w.str(e.Trace.TraceState)

	var id event.Identity
	if e.Identity != nil {
		id = *e.Identity
	}
	w.str(id.Subject)
	w.str(id.Issuer)
	w.str(id.SPIFFEID)
	w.count(len(id.Chain))
	for _, a := range id.Chain {
		w.str(a.Subject)
	}
	w.count(len(id.Chain))
	for _, a := range id.Chain {
		w.str(a.Issuer)
	}
	w.str(id.SessionID)
	w.str(id.TaskID)

	var req event.Request
	if e.Request != nil {
		req = *e.Request
	}
	w.str(req.Method)
	w.str(req.Host)
	w.str(req.Path)
	w.str(req.Query)
	w.str(req.Resource)
	names := make([]string, 0, len(req.Headers))
	for k := range req.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	w.count(len(names))
	for _, k := range names {
		w.str(k)
	}
	w.count(len(names))
	for _, k := range names {
		w.str(req.Headers[k])
	}
	w.str(req.RPCMethod)
	w.str(req.Tool)
	w.str(req.ArgsDigest)
	w.str(string(req.Args))
	w.u64(uint64(req.BodyBytes))
	w.str(req.Destination)
	w.str(req.DataClass)

	var dec event.Decision
	if e.Decision != nil {
		dec = *e.Decision
	}
	w.str(string(dec.Effect))
	w.str(dec.PolicyID)
	w.str(dec.RuleID)
	w.str(dec.PolicyHash)
	w.str(dec.Reason)
	w.str(dec.Code)
	w.u64(uint64(dec.EvalNanos))
	w.count(len(dec.Shadow))
	for _, r := range dec.Shadow {
		w.str(r)
	}

	var resp event.Response
	if e.Response != nil {
		resp = *e.Response
	}
	w.i32(int32(resp.Status))
	w.u64(uint64(resp.DurationNs))
	w.u64(uint64(resp.Bytes))

	var cp event.Checkpoint
	if e.Checkpoint != nil {
		cp = *e.Checkpoint
	}
	w.str(cp.KeyID)
	if !withoutSignature {
		w.str(cp.Signature)
	}
	w.count(len(cp.Unrecorded))
	for _, s := range cp.Unrecorded {
		w.u64(s)
	}
	if !ext.empty() {
		w.str(ext.sessionSource)
		w.str(ext.taskSource)
		w.str(ext.rpcKind)
		w.str(ext.prompt)
		w.count(len(ext.truncated))
		for _, s := range ext.truncated {
			w.str(s)
		}
		w.str(ext.outcome)
	}
}

// ext are an event's values of ExtColumns.
type ext struct {
	sessionSource, taskSource, rpcKind, prompt string
	truncated                                  []string
	outcome                                    string
}

func extOf(e *event.Event) ext {
	var x ext
	if e.Identity != nil {
		x.sessionSource, x.taskSource = e.Identity.SessionSource, e.Identity.TaskSource
	}
	if e.Request != nil {
		x.rpcKind, x.prompt, x.truncated = e.Request.RPCKind, e.Request.Prompt, e.Request.Truncated
	}
	if e.Response != nil {
		x.outcome = e.Response.Outcome
	}
	return x
}

func (x ext) empty() bool {
	return x.sessionSource == "" && x.taskSource == "" && x.rpcKind == "" && x.prompt == "" && len(x.truncated) == 0 && x.outcome == ""
}
