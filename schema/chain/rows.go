package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Columns are the columns of events_raw the chain hash covers
// (ddl.EventFields), in canonical order: a reader that selects them in this
// order in RowBinary can hash each row's bytes as they are (RowHash), and
// Of writes the same bytes from an event. Each canonical form covers the
// columns of its own and of every form before it; an event hashes in the
// oldest form that covers every value it has, so records written before a
// form existed still verify.
var Columns = ddl.EventFields

// forms start each canonical form, oldest first: forms[i] is
// rampart-chain-v(i+2). All have the same length, so Of can write the
// oldest and overwrite it once it knows the form.
var forms = []string{"rampart-chain-v2\x00", "rampart-chain-v3\x00", "rampart-chain-v4\x00", "rampart-chain-v5\x00", "rampart-chain-v6\x00"}

// FormStarts holds, for each form after v2, the index in Columns of its
// first column.
var FormStarts = formStarts()

// signature is the index in Columns of checkpoint_sig, which a checkpoint's
// signature leaves out of the hash it signs.
var signature = func() int {
	for i, c := range Columns {
		if c.Name == "checkpoint_sig" {
			return i
		}
	}
	panic("chain: events table has no checkpoint_sig")
}()

// formStarts checks that the columns of each form follow all those of the
// form before, as the canonical form needs: a table that breaks this is a
// programming error, found by every test of the package.
func formStarts() []int {
	var starts []int
	last := 2
	for i, c := range Columns {
		switch {
		case c.Chain < last || c.Chain > len(forms)+1:
			panic(fmt.Sprintf("chain: column %s of form %d out of order (after form %d, %d forms)", c.Name, c.Chain, last, len(forms)))
		case c.Chain > last:
			for ; last < c.Chain; last++ {
				starts = append(starts, i)
			}
		}
	}
	for ; last < len(forms)+1; last++ {
		starts = append(starts, len(Columns))
	}
	for _, f := range forms {
		if len(f) != len(forms[0]) {
			panic("chain: canonical form prefixes differ in length")
		}
	}
	return starts
}

// rowPrefixes start the canonical form of every row read back, by form:
// stored rows do not keep the event version, and are read back as this one.
var rowPrefixes = func() [][]byte {
	out := make([][]byte, len(forms))
	for i, f := range forms {
		out[i] = binary.AppendUvarint([]byte(f), event.Version)
	}
	return out
}()

// RowHash is the chain hash of a row of Columns in RowBinary, exactly as a
// RowBinary query returns it; starts holds the offset in row of the first
// column of each form after v2 (at FormStarts).
func RowHash(row []byte, starts []int) Hash {
	end, form := formOf(row, starts)
	d := sha256.New()
	d.Write(rowPrefixes[form])
	d.Write(row[:end])
	var h Hash
	d.Sum(h[:0])
	return h
}

// formOf is the form a row of Columns hashes in (an index into forms) and
// the end of the bytes that form covers: the newest whose own columns are
// not all empty. An empty value, and only an empty value, is all zero
// bytes in RowBinary.
func formOf(row []byte, starts []int) (end, form int) {
	end, form = len(row), len(starts)
	for form > 0 && allZero(row[starts[form-1]:end]) {
		form--
		end = starts[form]
	}
	return end, form
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
