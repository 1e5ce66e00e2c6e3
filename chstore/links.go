package chstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
)

// ScanLinks reads the chain links of the events_raw rows where the
// condition holds, hashing each row's RowBinary bytes as they arrive
// (chain.RowHash) instead of building an event: all `rampart verify` needs
// of millions of rows. Links carry no Event; verify reads the few it needs
// whole with ScanEvents. It needs Config.HTTPAddr.
func (c *Client) ScanLinks(ctx context.Context, where string, visit func(chain.Link) error) error {
	body, err := c.rowBinary(ctx, ddl.Names(chain.Columns), where)
	if err != nil {
		return err
	}
	return scanLinks(body, visit)
}

// ScanChainLinks is ScanLinks over seqs from to to of one chain
// (instance epoch), in order of seq, copies of one seq in no set order:
// what checking a chain one segment at a time needs. The server sorts the
// range alone, and reads the other columns only of the granules whose
// instance, epoch and seq match (PREWHERE), so a chain read range by
// range costs it a range's sort, not the chain's.
func (c *Client) ScanChainLinks(ctx context.Context, instance, epoch string, from, to uint64, visit func(chain.Link) error) error {
	more := fmt.Sprintf(" AND seq >= %d AND seq <= %d", from, to)
	body, err := c.rowBinaryQuery(ctx, chainQuery(c.cfg.Database, ddl.Names(chain.Columns), instance, epoch, more), sortSettings())
	if err != nil {
		return err
	}
	return scanLinks(body, visit)
}

// ScanChainCheckpoints reads the stored checkpoints of one chain whole,
// in order of seq, as ScanEvents reads events.
func (c *Client) ScanChainCheckpoints(ctx context.Context, instance, epoch string, visit func(*event.Event) error) error {
	q := chainQuery(c.cfg.Database, ddl.Names(ddl.EventFields), instance, epoch, " AND kind = "+forensic.Quote(string(event.KindCheckpoint)))
	body, err := c.rowBinaryQuery(ctx, q, sortSettings())
	if err != nil {
		return err
	}
	return decodeEvents(body, visit)
}

// chainQuery selects columns of one chain's rows where more holds, in
// order of seq.
func chainQuery(db string, columns []string, instance, epoch, more string) string {
	return fmt.Sprintf("SELECT %s FROM %s.events_raw PREWHERE instance = %s AND epoch = %s%s ORDER BY seq",
		strings.Join(columns, ", "), db, forensic.Quote(instance), forensic.Quote(epoch), more)
}

func sortSettings() url.Values {
	return url.Values{"max_bytes_before_external_sort": {strconv.Itoa(replaySortBytes)}}
}

func scanLinks(body io.ReadCloser, visit func(chain.Link) error) error {
	defer body.Close()
	s := linkScanner{r: body, buf: make([]byte, 1<<20), starts: make([]int, len(chain.FormStarts))}
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
	starts          []int  // the last row's form offsets (chain.RowHash)
}

func (s *linkScanner) next() (chain.Link, error) {
	for {
		n, l, err := s.parse(s.buf[s.start:s.end])
		if err == nil {
			row := s.buf[s.start : s.start+n]
			s.start += n
			l.Hash = chain.RowHash(row, s.starts)
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

// field says what parse does with a column: skip it or keep it in the link.
type field uint8

const (
	skip field = iota
	fieldID
	fieldKind
	fieldInstance
	fieldEpoch
	fieldPrev
	fieldSeq
)

// column is one entry of the plan parse follows for every row.
type column struct {
	typ   ddl.Type
	field field
	// starts is how many forms start at this column (chain.FormStarts):
	// parse notes the offset for each.
	starts uint8
}

// plan is chain.Columns with each column's part in the link decided once,
// not by name on every row.
var plan = func() []column {
	fields := map[string]field{"event_id": fieldID, "kind": fieldKind, "instance": fieldInstance,
		"epoch": fieldEpoch, "prev_hash": fieldPrev, "seq": fieldSeq}
	out := make([]column, len(chain.Columns)+1) // the last entry marks the row's end
	for i, c := range chain.Columns {
		out[i] = column{typ: c.Type, field: fields[c.Name]}
	}
	for _, i := range chain.FormStarts {
		out[i].starts++
	}
	return out
}()

// parse finds the row at the start of b and its link fields, and notes in
// s.starts where in the row each form's columns start. The length reads
// are written out inline: this loop runs for every column of every row
// verify reads.
func (s *linkScanner) parse(b []byte) (n int, l chain.Link, err error) {
	if len(s.starts) != len(chain.FormStarts) {
		s.starts = make([]int, len(chain.FormStarts))
	}
	off, form := 0, 0
	for _, col := range plan {
		for range col.starts {
			s.starts[form] = off
			form++
		}
		switch col.typ {
		case 0: // the end
		case ddl.String:
			n, w := uint64(0), 1
			if off < len(b) && b[off] < 0x80 {
				n = uint64(b[off])
			} else if n, w = binary.Uvarint(b[off:]); w <= 0 {
				return 0, l, lengthError(w)
			}
			if n > uint64(len(b)-off-w) {
				return 0, l, shortString(n)
			}
			off += w
			v := b[off : off+int(n)]
			off += int(n)
			switch col.field {
			case skip:
			case fieldID:
				l.ID = string(v)
			case fieldKind:
				l.Kind = kind(v)
			case fieldInstance:
				if string(v) != s.instance {
					s.instance = string(v)
				}
				l.Instance = s.instance
			case fieldEpoch:
				if string(v) != s.epoch {
					s.epoch = string(v)
				}
				l.Epoch = s.epoch
			case fieldPrev:
				l.HasPrev = len(v) > 0
				l.Prev, _ = chain.ParseHash(v)
			}
		case ddl.UInt64, ddl.Int64, ddl.Int32, ddl.DateTime:
			width := col.typ.Width()
			if len(b)-off < width {
				return 0, l, errShort
			}
			if col.field == fieldSeq {
				l.Seq = binary.LittleEndian.Uint64(b[off:])
			}
			off += width
		case ddl.Strings, ddl.UInt64s:
			count, w := binary.Uvarint(b[off:])
			switch {
			case w == 0:
				return 0, l, errShort
			case w < 0 || count > maxRow:
				return 0, l, errors.New("bad array length")
			}
			off += w
			if col.typ == ddl.UInt64s {
				if count*8 > uint64(len(b)-off) {
					return 0, l, errShort
				}
				off += int(count) * 8
				continue
			}
			for range count {
				n, w := binary.Uvarint(b[off:])
				if w <= 0 {
					return 0, l, lengthError(w)
				}
				if n > uint64(len(b)-off-w) {
					return 0, l, shortString(n)
				}
				off += w + int(n)
			}
		default:
			return 0, l, fmt.Errorf("column type %s cannot be split", col.typ.SQL())
		}
	}
	return off, l, nil
}

// lengthError is the error of a string length binary.Uvarint could not
// read: more bytes may complete it (0), or none can (<0).
func lengthError(w int) error {
	if w == 0 {
		return errShort
	}
	return errors.New("bad string length")
}

// shortString is the error of a string of n bytes past the end of the
// bytes read so far.
func shortString(n uint64) error {
	if n > maxRow {
		return fmt.Errorf("string of %d bytes", n)
	}
	return errShort
}

// decodeRow decodes one RowBinary row of chain.Columns into an event.
func decodeRow(row []byte) (*event.Event, error) {
	r := ddl.Row{}
	err := ddl.NewDecoder(bufio.NewReader(bytes.NewReader(row))).Decode(chain.Columns, &r)
	return r.Event, err
}

// kinds are the event kinds links name without allocating.
var kinds = []event.Kind{event.KindRequest, event.KindDecision, event.KindResponse, event.KindCheckpoint, event.KindPolicy,
	event.KindToolSchema, event.KindServerRequest, event.KindAlert, event.KindCredential, event.KindBackendRequest}

// kind returns the event kind b names, without allocating for known kinds.
func kind(b []byte) event.Kind {
	for _, k := range kinds {
		if string(b) == string(k) {
			return k
		}
	}
	return event.Kind(b)
}
