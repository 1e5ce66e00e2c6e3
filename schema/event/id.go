package event

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// crockford is the ULID alphabet: sortable as bytes, no I, L, O, U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDSource makes ULIDs (48-bit millisecond time, 80 random bits) that are
// strictly increasing within one source, even within one millisecond.
type IDSource struct {
	mu     sync.Mutex
	lastMS uint64
	hi     uint16 // top 16 of the 80 random bits
	lo     uint64 // low 64
}

// New returns the next ID for time t.
func (s *IDSource) New(t time.Time) string {
	ms := uint64(t.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMS {
		// Same (or earlier, clock stepped back) millisecond: increment the
		// random part so IDs stay strictly ordered.
		ms = s.lastMS
		s.lo++
		if s.lo == 0 {
			s.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		s.hi = binary.BigEndian.Uint16(b[:2])
		s.lo = binary.BigEndian.Uint64(b[2:])
		s.lastMS = ms
	}
	hi, lo := s.hi, s.lo
	s.mu.Unlock()

	var raw [16]byte
	raw[0] = byte(ms >> 40)
	raw[1] = byte(ms >> 32)
	raw[2] = byte(ms >> 24)
	raw[3] = byte(ms >> 16)
	raw[4] = byte(ms >> 8)
	raw[5] = byte(ms)
	binary.BigEndian.PutUint16(raw[6:8], hi)
	binary.BigEndian.PutUint64(raw[8:], lo)
	return encodeULID(raw)
}

// encodeULID writes 128 bits as 26 Crockford base32 characters, most
// significant first (the first character carries only 3 bits).
func encodeULID(raw [16]byte) string {
	hi := binary.BigEndian.Uint64(raw[:8])
	lo := binary.BigEndian.Uint64(raw[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// DerivedID returns the ULID with t's millisecond as its time part and
// entropy as its 80 random bits. Derived ids name findings that must be
// the same however often they are made (an alert from a redelivered or
// replayed event): the caller hashes what identifies the finding into
// entropy, and the id still sorts by time with the ids of IDSource.
func DerivedID(t time.Time, entropy [10]byte) string {
	ms := uint64(t.UnixMilli())
	var raw [16]byte
	for i := 0; i < 6; i++ {
		raw[i] = byte(ms >> (40 - 8*i))
	}
	copy(raw[6:], entropy[:])
	return encodeULID(raw)
}
