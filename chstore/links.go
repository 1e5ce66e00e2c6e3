package chstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

// ScanLinks reads the chain links of the events_raw rows where the
// condition holds, hashing each row's RowBinary bytes as they arrive
// (chain.RowHash) instead of building an event: all `rampart verify` needs
// of millions of rows. Links carry no Event; verify reads the few it needs
// whole with ScanEvents. It needs Config.HTTPAddr.
func (c *Client) ScanLinks(ctx context.Context, where string, visit func(chain.Link) error) error {
	names := make([]string, len(chain.Columns))
	for i, col := range chain.Columns {
		names[i] = col.Name
	}
	body, err := c.rowBinary(ctx, names, where)
	if err != nil {
		return err
	}
	defer body.Close()
	s := linkScanner{r: body, buf: make([]byte, 1<<20)}
	for {
		l, err := s.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("clickhouse: decode RowBinary: %w", err)
		}
		if err := visit(l); err != nil {
			return err
		}
	}
}

// errShort says a row continues past the bytes read so far.
var errShort = errors.New("short row")

// maxRow bounds one row, as ScanEvents bounds one string.
const maxRow = 256 << 20

// linkScanner splits a RowBinary stream of chain.Columns into rows, in a
// buffer that grows to hold the largest row.
type linkScanner struct {
	r               io.Reader
	buf             []byte
	start, end      int // unparsed bytes: buf[start:end]
	eof             bool
	instance, epoch string // the same across a chain: allocated once
}

func (s *linkScanner) next() (chain.Link, error) {
	for {
		n, l, err := s.parse(s.buf[s.start:s.end])
		if err == nil {
			row := s.buf[s.start : s.start+n]
			s.start += n
			l.Hash = chain.RowHash(row)
			if l.Kind == event.KindCheckpoint { // rare, and read whole
				l.Event, err = decodeRow(row)
			}
			return l, err
		}
		if err != errShort {
			return l, err
		}
		if s.eof {
			if s.start == s.end {
				return l, io.EOF
			}
			return l, io.ErrUnexpectedEOF
		}
		if err := s.fill(); err != nil {
			return l, err
		}
	}
}

// fill reads more, first making room by moving the unparsed bytes to the
// front, or by growing the buffer when one row fills it.
func (s *linkScanner) fill() error {
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= maxRow {
			return fmt.Errorf("row longer than %d bytes", maxRow)
		}
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if err == io.EOF {
		s.eof = true
		return nil
	}
	return err
}

// parse finds the row at the start of b and its link fields.
func (s *linkScanner) parse(b []byte) (int, chain.Link, error) {
	var l chain.Link
	off := 0
	str := func() ([]byte, error) {
		n, w := binary.Uvarint(b[off:])
		if w <= 0 {
			if w == 0 {
				return nil, errShort
			}
			return nil, errors.New("bad string length")
		}
		if n > uint64(len(b)-off-w) {
			if n > maxRow {
				return nil, fmt.Errorf("string of %d bytes", n)
			}
			return nil, errShort
		}
		off += w
		v := b[off : off+int(n)]
		off += int(n)
		return v, nil
	}
	fixed := func(width int) ([]byte, error) {
		if len(b)-off < width {
			return nil, errShort
		}
		off += width
		return b[off-width : off], nil
	}
	count := func() (int, error) {
		n, w := binary.Uvarint(b[off:])
		switch {
		case w == 0:
			return 0, errShort
		case w < 0 || n > maxRow:
			return 0, errors.New("bad array length")
		}
		off += w
		return int(n), nil
	}
	for _, col := range chain.Columns {
		switch col.Type {
		case chain.String:
			v, err := str()
			if err != nil {
				return 0, l, err
			}
			switch col.Name {
			case "event_id":
				l.ID = string(v)
			case "kind":
				l.Kind = kind(v)
			case "instance":
				if string(v) != s.instance {
					s.instance = string(v)
				}
				l.Instance = s.instance
			case "epoch":
				if string(v) != s.epoch {
					s.epoch = string(v)
				}
				l.Epoch = s.epoch
			case "prev_hash":
				l.HasPrev = len(v) > 0
				l.Prev, _ = chain.ParseHash(v)
			}
		case chain.Int, chain.Int32:
			width := 8
			if col.Type == chain.Int32 {
				width = 4
			}
			v, err := fixed(width)
			if err != nil {
				return 0, l, err
			}
			if col.Name == "seq" {
				l.Seq = binary.LittleEndian.Uint64(v)
			}
		case chain.Strings, chain.Ints:
			n, err := count()
			if err != nil {
				return 0, l, err
			}
			for range n {
				if col.Type == chain.Ints {
					_, err = fixed(8)
				} else {
					_, err = str()
				}
				if err != nil {
					return 0, l, err
				}
			}
		}
	}
	return off, l, nil
}

// decodeRow decodes one RowBinary row of storedColumns into an event.
func decodeRow(row []byte) (*event.Event, error) {
	d := &rowDecoder{r: bufio.NewReader(bytes.NewReader(row))}
	e := &event.Event{}
	err := d.event(e, &event.Identity{}, &event.Request{}, &event.Decision{}, &event.Response{})
	return e, err
}

// kinds are the event kinds links name without allocating.
var kinds = []event.Kind{event.KindRequest, event.KindDecision, event.KindResponse, event.KindCheckpoint, event.KindPolicy, event.KindToolSchema}

// kind returns the event kind b names, without allocating for known kinds.
func kind(b []byte) event.Kind {
	for _, k := range kinds {
		if string(b) == string(k) {
			return k
		}
	}
	return event.Kind(b)
}
