package chstore

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/rampart-io/rampart/schema/chain"
)

// emptyRow is a row of chain.Columns with every value empty or zero, but
// seq, instance and epoch set.
func emptyRow() []byte {
	var b []byte
	for _, c := range chain.Columns {
		switch {
		case c.Name == "seq":
			b = binary.LittleEndian.AppendUint64(b, 7)
		case c.Name == "instance" || c.Name == "epoch":
			b = append(b, 3, 'e', 'n', 'f')
		case c.Type.Width() == 0:
			b = append(b, 0)
		default:
			b = append(b, make([]byte, c.Type.Width())...)
		}
	}
	return b
}

// FuzzParseRow feeds the link scanner's row splitter arbitrary bytes: it
// must not panic; a row it accepts must hold every value the full decoder
// reads, and, where that decoder accepts it too (it also refuses paired
// arrays of unequal length, which only hashing needs to see), give the
// same link fields; every proper prefix of it must read as incomplete
// (errShort), which is how the scanner knows to read more, not fail.
func FuzzParseRow(f *testing.F) {
	f.Add(emptyRow())
	f.Add(append(emptyRow(), emptyRow()...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s linkScanner
		n, l, err := s.parse(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("row of %d bytes in %d", n, len(b))
		}
		for i, at := range s.starts {
			if at <= 0 || at > n || i > 0 && at < s.starts[i-1] {
				t.Fatalf("row of %d bytes, its forms starting at %v", n, s.starts)
			}
		}
		e, err := decodeRow(b[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("accepted row is short for the decoder: %v", err)
		}
		if err == nil && (e.Seq != l.Seq || e.Instance != l.Instance || e.Epoch != l.Epoch || e.ID != l.ID || e.Kind != l.Kind) {
			t.Fatalf("link %+v, event %+v", l, e)
		}
		for _, k := range []int{0, n / 2, n - 1} {
			if _, _, err := s.parse(b[:k]); err != errShort {
				t.Fatalf("prefix of %d of a %d-byte row: %v", k, n, err)
			}
		}
	})
}
