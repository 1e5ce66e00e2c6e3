package chain

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/rampart-io/rampart/schema/event"
)

// ColumnType is how a column enters the canonical form.
type ColumnType int

// Column types, as ClickHouse stores them.
const (
	String  ColumnType = iota // String: uvarint length, bytes
	Int                       // UInt64 or Int64: 8 bytes little-endian
	Int32                     // Int32: 4 bytes little-endian
	Strings                   // Array(String): uvarint count, strings
	Ints                      // Array(UInt64): uvarint count, integers
)

// Column is one column of events_raw that the chain hash covers.
type Column struct {
	Name string
	Type ColumnType
}

// Columns are the columns of events_raw the chain hash covers, in canonical
// order: a reader that selects them in this order in RowBinary can hash
// each row's bytes as they are (RowHash). of() writes the same fields in
// this order, in the same encoding.
var Columns = []Column{
	{"event_id", String}, {"kind", String}, {"event_time_us", Int}, {"tenant", String}, {"instance", String},
	{"epoch", String}, {"seq", Int}, {"prev_hash", String}, {"request_id", String},
	{"traceparent", String}, {"tracestate", String},
	{"subject", String}, {"issuer", String}, {"spiffe_id", String},
	{"chain_subjects", Strings}, {"chain_issuers", Strings}, {"session_id", String}, {"task_id", String},
	{"method", String}, {"host", String}, {"path", String}, {"query", String}, {"resource", String},
	{"header_names", Strings}, {"header_values", Strings},
	{"rpc_method", String}, {"tool", String}, {"args_digest", String}, {"args", String}, {"body_bytes", Int},
	{"destination", String}, {"data_class", String},
	{"effect", String}, {"policy_id", String}, {"rule_id", String}, {"policy_hash", String}, {"reason", String},
	{"code", String}, {"eval_ns", Int}, {"shadow_rules", Strings},
	{"status", Int32}, {"duration_ns", Int}, {"response_bytes", Int},
	{"checkpoint_key_id", String}, {"checkpoint_sig", String}, {"checkpoint_unrecorded", Ints},
}

// rowPrefix starts the canonical form of every row read back: stored rows
// do not keep the event version, and are read back as this one.
var rowPrefix = binary.AppendUvarint([]byte(canonicalVersion), event.Version)

// RowHash is the chain hash of a row of Columns in RowBinary, exactly as a
// RowBinary query returns it.
func RowHash(row []byte) Hash {
	d := sha256.New()
	d.Write(rowPrefix)
	d.Write(row)
	var h Hash
	d.Sum(h[:0])
	return h
}

// ParseHash parses a hash in the form events carry ("sha256:<hex>", lower
// case); ok is false when s is not one.
func ParseHash(s []byte) (h Hash, ok bool) {
	if len(s) != len(Prefix)+2*len(h) || string(s[:len(Prefix)]) != Prefix {
		return h, false
	}
	s = s[len(Prefix):]
	bad := byte(0)
	for i := range h {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		h[i] = hi<<4 | lo&0xf
	}
	if bad&0x10 != 0 {
		return Hash{}, false
	}
	return h, true
}

// hexValue maps a lower-case hex digit to its value, anything else to 0x10.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x10
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()
