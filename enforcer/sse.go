package enforcer

import "bytes"

// sseData returns the data of each event in an SSE stream (the HTML
// standard's event stream format): lines end in CRLF, LF or CR; a blank
// line ends an event; an event's "data:" lines, one leading space cut,
// join with LF; comments and other fields are skipped. An event cut off
// before its blank line is not dispatched, as a browser would not.
func sseData(stream []byte) [][]byte {
	var out [][]byte
	var data []byte
	seen := false // the event has a data field, possibly empty
	for len(stream) > 0 {
		i := bytes.IndexAny(stream, "\r\n")
		if i < 0 {
			break // an unterminated last line
		}
		line := stream[:i]
		next := i + 1
		if stream[i] == '\r' && next < len(stream) && stream[next] == '\n' {
			next++
		}
		stream = stream[next:]
		if len(line) == 0 {
			if seen {
				out = append(out, data)
			}
			data, seen = nil, false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue // a comment (empty field name), event, id, retry
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if seen {
			data = append(data, '\n')
		}
		data, seen = append(data, value...), true
	}
	return out
}
