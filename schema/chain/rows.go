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
// this order, in the same encoding. The last ExtColumns of them joined in
// rampart-chain-v3; a row whose ext columns are all empty hashes in the v2
// form, without them, so records written before they existed still verify.
var Columns = append(append([]Column{}, v2Columns...), ExtColumns...)

var v2Columns = []Column{
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

// ExtColumns are the columns added in rampart-chain-v3, at the end of
// Columns. Each is a String or Array(String), so when all are empty they
// are exactly one zero byte each in RowBinary.
var ExtColumns = []Column{
	{"session_source", String}, {"task_source", String}, {"rpc_kind", String}, {"prompt", String},
	{"truncated", Strings}, {"response_outcome", String},
}

// ExtStart is the index in Columns of the first of ExtColumns.
var ExtStart = len(v2Columns)

// rowPrefixV2 and rowPrefixV3 start the canonical form of every row read
// back: stored rows do not keep the event version, and are read back as
// this one.
var (
	rowPrefixV2 = binary.AppendUvarint([]byte(canonicalV2), event.Version)
	rowPrefixV3 = binary.AppendUvarint([]byte(canonicalV3), event.Version)
)

// RowHash is the chain hash of a row of Columns in RowBinary, exactly as a
// RowBinary query returns it; ext is the offset in row of its first
// ExtColumns value.
func RowHash(row []byte, ext int) Hash {
	d := sha256.New()
	if tail := row[ext:]; len(tail) == len(ExtColumns) && allZero(tail) {
		d.Write(rowPrefixV2)
		d.Write(row[:ext])
	} else {
		d.Write(rowPrefixV3)
		d.Write(row)
	}
	var h Hash
	d.Sum(h[:0])
	return h
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
