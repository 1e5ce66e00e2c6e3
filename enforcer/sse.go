package enforcer

import "bytes"

// sseReader splits an SSE stream (the HTML standard's event stream format)
// into its events' data as the bytes pass: lines end in CRLF, LF or CR; a
// blank line ends an event; an event's "data:" lines, one leading space
// cut, join with LF; comments and other fields are skipped. An event cut
// off before its blank line is never dispatched, as a browser would not.
type sseReader struct {
	line    []byte // the line being read
	data    []byte // the event being read
	seen    bool   // it has a data field, possibly empty
	afterCR bool   // the last byte fed ended a line with CR: an LF next is its end
	// onEvent sees each event's data; a reason it returns stops the
	// reading, as refused.
	onEvent func(data []byte) (refuse string)
	// limit bounds what one event may hold; past it the event is not
	// dispatched but over is, once, with what was dropped.
	limit   int
	stopped bool // past the limit, or ambiguous: nothing more is read
	// refused says why the stream cannot be read as every client would
	// read it: an event past limit, or a bare CR, which the standard
	// reads as a line end and common clients (the Go SDK's) do not.
	refused string
}

func (s *sseReader) feed(p []byte) {
	for len(p) > 0 && !s.stopped {
		if s.afterCR {
			if p[0] != '\n' {
				s.stop("a bare CR")
				return
			}
			p = p[1:]
			s.afterCR = false
			continue
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.line = append(s.line, p...)
			s.bound()
			return
		}
		s.line = append(s.line, p[:i]...)
		s.afterCR = p[i] == '\r'
		p = p[i+1:]
		s.endLine()
	}
}

func (s *sseReader) endLine() {
	line := s.line
	s.line = s.line[:0]
	if len(line) == 0 {
		if s.seen {
			if why := s.onEvent(s.data); why != "" {
				s.stop(why)
				return
			}
		}
		s.data, s.seen = s.data[:0], false
		return
	}
	field, value, _ := bytes.Cut(line, []byte(":"))
	if string(field) != "data" {
		return // a comment (empty field name), event, id, retry
	}
	value = bytes.TrimPrefix(value, []byte(" "))
	if s.seen {
		s.data = append(s.data, '\n')
	}
	s.data, s.seen = append(s.data, value...), true
	s.bound()
}

// bound stops at an event grown past the limit.
func (s *sseReader) bound() {
	if s.limit > 0 && len(s.data)+len(s.line) > s.limit {
		s.stop("an event past the limit")
	}
}

func (s *sseReader) stop(why string) {
	s.data, s.line, s.seen, s.stopped, s.refused = nil, nil, false, true, why
}

// sseData returns the data of each complete event in stream.
func sseData(stream []byte) [][]byte {
	var out [][]byte
	r := sseReader{onEvent: func(d []byte) string { out = append(out, bytes.Clone(d)); return "" }}
	r.feed(stream)
	return out
}
