package ddl

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// Type is a column's ClickHouse type, which fixes how its values are
// written in RowBinary (the format inserts, reads and the chain hash share).
type Type uint8

// Column types, as ClickHouse stores them.
const (
	String   Type = iota + 1 // String: uvarint length, bytes
	UInt64                   // UInt64: 8 bytes little-endian
	Int64                    // Int64: 8 bytes little-endian
	Int32                    // Int32: 4 bytes little-endian
	DateTime                 // DateTime: seconds as 4 bytes little-endian
	Strings                  // Array(String): uvarint count, strings
	UInt64s                  // Array(UInt64): uvarint count, integers
	UInt8                    // UInt8: one byte (a bool: 18.16 has no Bool)
)

// SQL is the type's name in ClickHouse DDL and in system.columns.
func (t Type) SQL() string {
	switch t {
	case String:
		return "String"
	case UInt64:
		return "UInt64"
	case Int64:
		return "Int64"
	case Int32:
		return "Int32"
	case DateTime:
		return "DateTime"
	case Strings:
		return "Array(String)"
	case UInt64s:
		return "Array(UInt64)"
	case UInt8:
		return "UInt8"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Width is the size in RowBinary of a fixed-width value, 0 for a
// length-prefixed one (strings and arrays).
func (t Type) Width() int {
	switch t {
	case UInt64, Int64:
		return 8
	case Int32, DateTime:
		return 4
	case UInt8:
		return 1
	}
	return 0
}

// Row is one row of events_raw: an event, and what the collector adds to
// it. The columns read and write it; Event's absent sections read as
// empty ones.
type Row struct {
	Event *event.Event
	// StreamSeq is the JetStream sequence the collector read the event at.
	StreamSeq uint64
	// CollectedAt is when the collector stored the event.
	CollectedAt time.Time
	// Agent is what the agent inventory said of the event's agent when
	// the collector stored it.
	Agent Agent

	// names caches the event's header names, sorted, for the pair of
	// header columns; valid while named is set (reset by every use).
	names    []string
	named    bool
	namesBuf [4]string
	// pending holds the first array of a pair of columns being decoded
	// until its second arrives.
	pending []string
}

// Agent is the agent inventory's entry for an event's agent, as the
// collector stores it beside the event (component/inventory). It is not part
// of the event: the chain does not cover it.
type Agent struct {
	Owner, Team, Purpose, RiskTier, Environment string
	// Registered says an inventory entry matched the agent.
	Registered bool
	// Inventory is the version of the inventory consulted, "" when there
	// was none: only then is an unregistered agent not a finding.
	Inventory string
}

// reset readies r for one pass over its columns.
func (r *Row) reset() {
	r.names, r.named, r.pending = nil, false, nil
}

// Absent sections read as these zero values; getters never write them.
var (
	noIdentity   event.Identity
	noRequest    event.Request
	noDecision   event.Decision
	noResponse   event.Response
	noCheckpoint event.Checkpoint
	noAlert      event.Alert
	noCredential event.Credential
	noBackend    event.Backend
)

func (r *Row) id() *event.Identity {
	if r.Event.Identity != nil {
		return r.Event.Identity
	}
	return &noIdentity
}

func (r *Row) req() *event.Request {
	if r.Event.Request != nil {
		return r.Event.Request
	}
	return &noRequest
}

func (r *Row) dec() *event.Decision {
	if r.Event.Decision != nil {
		return r.Event.Decision
	}
	return &noDecision
}

func (r *Row) resp() *event.Response {
	if r.Event.Response != nil {
		return r.Event.Response
	}
	return &noResponse
}

func (r *Row) cp() *event.Checkpoint {
	if r.Event.Checkpoint != nil {
		return r.Event.Checkpoint
	}
	return &noCheckpoint
}

func (r *Row) alert() *event.Alert {
	if r.Event.Alert != nil {
		return r.Event.Alert
	}
	return &noAlert
}

func (r *Row) cred() *event.Credential {
	if r.Event.Credential != nil {
		return r.Event.Credential
	}
	return &noCredential
}

func (r *Row) backend() *event.Backend {
	if r.Event.Backend != nil {
		return r.Event.Backend
	}
	return &noBackend
}

// The setters' sections: decoding allocates Identity, Request, Decision
// and Response up front (as events read back always had them); Checkpoint
// Alert and Credential only when a column of theirs holds a value, or the kind is
// theirs (finish).
func (r *Row) setID() *event.Identity   { return r.Event.Identity }
func (r *Row) setReq() *event.Request   { return r.Event.Request }
func (r *Row) setDec() *event.Decision  { return r.Event.Decision }
func (r *Row) setResp() *event.Response { return r.Event.Response }
func (r *Row) setCP() *event.Checkpoint { return lazy(&r.Event.Checkpoint) }
func (r *Row) setAlert() *event.Alert   { return lazy(&r.Event.Alert) }
func (r *Row) setCred() *event.Credential {
	return lazy(&r.Event.Credential)
}
func (r *Row) setBackend() *event.Backend { return lazy(&r.Event.Backend) }

func lazy[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

// headerNames are the event's header names, sorted: header_names in
// order, and the order of header_values.
func (r *Row) headerNames() []string {
	if !r.named {
		r.names, r.named = sortedKeys(r.req().Headers, r.namesBuf[:0]), true
	}
	return r.names
}

// begin readies r for decoding: the sections every event read back has.
func (r *Row) begin() {
	r.reset()
	if r.Event == nil {
		r.Event = &event.Event{}
	}
	e := r.Event
	e.V = event.Version
	if e.Identity == nil {
		e.Identity = &event.Identity{}
	}
	if e.Request == nil {
		e.Request = &event.Request{}
	}
	if e.Decision == nil {
		e.Decision = &event.Decision{}
	}
	if e.Response == nil {
		e.Response = &event.Response{}
	}
}

// finish completes a decoded row: a checkpoint, alert, credential or
// backend_request event has its
// section even when every column of it is empty.
func (r *Row) finish() error {
	if r.pending != nil {
		return fmt.Errorf("event %s: a paired array column was read without its pair", r.Event.ID)
	}
	switch r.Event.Kind {
	case event.KindCheckpoint:
		r.setCP()
	case event.KindAlert:
		r.setAlert()
	case event.KindCredential:
		r.setCred()
	case event.KindBackendRequest:
		r.setBackend()
	}
	return nil
}

// codec is how one column reads and writes its value of a Row.
type codec interface {
	// appendTo appends the value in RowBinary.
	appendTo(b []byte, r *Row) []byte
	// value is the value as an insert through the native protocol takes it.
	value(r *Row) any
	// decode reads the value from RowBinary into r.
	decode(d *Decoder, r *Row) error
	// dest is a new scan destination for the value over the native protocol.
	dest() any
	// apply sets the value scanned into dest on r.
	apply(r *Row, dest any) error
}

// scalar is a column holding one value of a Go type T.
type scalar[T any] struct {
	get func(*Row) T
	set func(*Row, T) // nil for a column derived from others: never read back
	enc func([]byte, T) []byte
	dec func(*Decoder) T
}

func (c scalar[T]) appendTo(b []byte, r *Row) []byte { return c.enc(b, c.get(r)) }
func (c scalar[T]) value(r *Row) any                 { return c.get(r) }

func (c scalar[T]) decode(d *Decoder, r *Row) error {
	v := c.dec(d)
	if c.set != nil && d.err == nil {
		c.set(r, v)
	}
	return d.err
}

func (c scalar[T]) dest() any { return new(T) }
func (c scalar[T]) apply(r *Row, dest any) error {
	if c.set != nil {
		c.set(r, *dest.(*T))
	}
	return nil
}

// strs is an Array(String) column. It reads through n and at, not a slice,
// so hashing an event allocates nothing for it.
type strs struct {
	n   func(*Row) int
	at  func(*Row, int) string
	set func(*Row, []string) error
}

func (c strs) appendTo(b []byte, r *Row) []byte {
	n := c.n(r)
	b = binary.AppendUvarint(b, uint64(n))
	for i := range n {
		b = appendString(b, c.at(r, i))
	}
	return b
}

func (c strs) value(r *Row) any {
	n := c.n(r)
	if n == 0 {
		return noStrings
	}
	out := make([]string, n)
	for i := range out {
		out[i] = c.at(r, i)
	}
	return out
}

// noStrings and noUInt64s are the insert value of an empty array, boxed
// once: most rows leave most array columns empty.
var (
	noStrings any = []string{}
	noUInt64s any = []uint64{}
)

func (c strs) decode(d *Decoder, r *Row) error {
	v := d.strs()
	if d.err != nil {
		return d.err
	}
	return c.set(r, v)
}
func (c strs) dest() any { return new([]string) }
func (c strs) apply(r *Row, dest any) error {
	v := *dest.(*[]string)
	if len(v) == 0 {
		v = nil
	}
	return c.set(r, v)
}

// u64s is an Array(UInt64) column.
type u64s struct {
	get func(*Row) []uint64
	set func(*Row, []uint64)
}

func (c u64s) appendTo(b []byte, r *Row) []byte {
	v := c.get(r)
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

func (c u64s) value(r *Row) any {
	if v := c.get(r); len(v) > 0 {
		return v
	}
	return noUInt64s
}

func (c u64s) decode(d *Decoder, r *Row) error {
	if v := d.u64s(); d.err == nil && len(v) > 0 {
		c.set(r, v)
	}
	return d.err
}
func (c u64s) dest() any { return new([]uint64) }
func (c u64s) apply(r *Row, dest any) error {
	if v := *dest.(*[]uint64); len(v) > 0 {
		c.set(r, v)
	}
	return nil
}

// The RowBinary encodings.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func appendI64(b []byte, v int64) []byte  { return binary.LittleEndian.AppendUint64(b, uint64(v)) }
func appendI32(b []byte, v int32) []byte  { return binary.LittleEndian.AppendUint32(b, uint32(v)) }
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
func appendTime(b []byte, t time.Time) []byte {
	return binary.LittleEndian.AppendUint32(b, uint32(t.Unix()))
}

// The column constructors, one per Go type.
func strCol(name string, form int, get func(*Row) string, set func(*Row, string)) Column {
	return Column{Name: name, Type: String, Chain: form, codec: scalar[string]{get, set, appendString, (*Decoder).str}, getString: get}
}

func u64Col(name string, form int, get func(*Row) uint64, set func(*Row, uint64)) Column {
	return Column{Name: name, Type: UInt64, Chain: form, codec: scalar[uint64]{get, set, appendU64, (*Decoder).u64}}
}

func i64Col(name string, form int, get func(*Row) int64, set func(*Row, int64)) Column {
	return Column{Name: name, Type: Int64, Chain: form, codec: scalar[int64]{get, set, appendI64, (*Decoder).i64}}
}

func i32Col(name string, form int, get func(*Row) int32, set func(*Row, int32)) Column {
	return Column{Name: name, Type: Int32, Chain: form, codec: scalar[int32]{get, set, appendI32, (*Decoder).i32}}
}

func boolCol(name string, get func(*Row) bool, set func(*Row, bool)) Column {
	return Column{Name: name, Type: UInt8, codec: scalar[bool]{get, set, appendBool, (*Decoder).bool}}
}

func timeCol(name string, get func(*Row) time.Time, set func(*Row, time.Time)) Column {
	return Column{Name: name, Type: DateTime, codec: scalar[time.Time]{get, set, appendTime, (*Decoder).time}}
}

func strsCol(name string, form int, n func(*Row) int, at func(*Row, int) string, set func(*Row, []string) error) Column {
	return Column{Name: name, Type: Strings, Chain: form, codec: strs{n, at, set}}
}

// plainStrs is an Array(String) column that is a []string of the event.
func plainStrs(name string, form int, get func(*Row) []string, set func(*Row, []string)) Column {
	return strsCol(name, form, func(r *Row) int { return len(get(r)) }, func(r *Row, i int) string { return get(r)[i] },
		func(r *Row, v []string) error {
			if len(v) > 0 {
				set(r, v)
			}
			return nil
		})
}

func u64sCol(name string, form int, get func(*Row) []uint64, set func(*Row, []uint64)) Column {
	return Column{Name: name, Type: UInt64s, Chain: form, codec: u64s{get, set}}
}

// first and second make the two Array(String) columns of a pair (parallel
// arrays of one list of the event): first's value waits in the row until
// second's arrives, so second must follow first among the columns read.
func first(r *Row, v []string) error {
	if r.pending != nil {
		return fmt.Errorf("event %s: a pair of array columns overlaps another", r.Event.ID)
	}
	if v == nil {
		v = []string{}
	}
	r.pending = v
	return nil
}

func second(a, b string, r *Row, v []string, build func(r *Row, a, b []string)) error {
	p := r.pending
	r.pending = nil
	if p == nil {
		return fmt.Errorf("event %s: %s read without %s", r.Event.ID, b, a)
	}
	if len(p) != len(v) {
		return fmt.Errorf("event %s: paired array columns %s and %s disagree in length", r.Event.ID, a, b)
	}
	if len(v) > 0 {
		build(r, p, v)
	}
	return nil
}

// Decoder reads RowBinary rows of columns. Lengths are bounded, so a
// corrupt or hostile stream cannot make it allocate without limit.
type Decoder struct {
	r   *bufio.Reader
	err error
	buf [8]byte
}

// NewDecoder reads rows from r.
func NewDecoder(r *bufio.Reader) *Decoder { return &Decoder{r: r} }

// More reports whether another row follows: false, nil at the end of the
// stream; an error reading is returned, never taken for the end.
func (d *Decoder) More() (bool, error) {
	if _, err := d.r.Peek(1); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Decode reads one row of cols into r, rebuilding r.Event as the columns
// wrote it. r.Event may be preset (with its sections) to choose where the
// event lives; its fields must be zero.
func (d *Decoder) Decode(cols []Column, r *Row) error {
	r.begin()
	for _, c := range cols {
		if err := c.codec.decode(d, r); err != nil {
			return err
		}
	}
	return r.finish()
}

// Scan is Decode for values scanned over the native protocol: dests are
// ScanDests(cols) after the scan.
func Scan(cols []Column, dests []any, r *Row) error {
	r.begin()
	for i, c := range cols {
		if err := c.codec.apply(r, dests[i]); err != nil {
			return err
		}
	}
	return r.finish()
}

// ScanDests are new scan destinations for a row of cols.
func ScanDests(cols []Column) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c.codec.dest()
	}
	return out
}

// Limits on one value: no record holds more, and a corrupt stream that
// claims more is refused before anything is allocated.
const (
	maxString = 64 << 20
	maxArray  = 1 << 20
)

func (d *Decoder) str() string {
	if d.err != nil {
		return ""
	}
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.err = err
		return ""
	}
	if n == 0 {
		return ""
	}
	if n > maxString {
		d.err = fmt.Errorf("string of %d bytes", n)
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.err = err
		return ""
	}
	return string(b)
}

func (d *Decoder) fixed(n int) []byte {
	if d.err != nil {
		return d.buf[:n]
	}
	if _, err := io.ReadFull(d.r, d.buf[:n]); err != nil {
		d.err = err
	}
	return d.buf[:n]
}

func (d *Decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.fixed(8)) }
func (d *Decoder) i64() int64  { return int64(d.u64()) }
func (d *Decoder) i32() int32  { return int32(binary.LittleEndian.Uint32(d.fixed(4))) }
func (d *Decoder) bool() bool  { return d.fixed(1)[0] != 0 }
func (d *Decoder) time() time.Time {
	return time.Unix(int64(binary.LittleEndian.Uint32(d.fixed(4))), 0).UTC()
}

func (d *Decoder) count() int {
	if d.err != nil {
		return 0
	}
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.err = fmt.Errorf("array length: %w", err)
		return 0
	}
	if n > maxArray {
		d.err = fmt.Errorf("array of %d values", n)
		return 0
	}
	return int(n)
}

func (d *Decoder) strs() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *Decoder) u64s() []uint64 {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = d.u64()
	}
	return out
}
