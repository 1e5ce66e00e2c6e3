package event

import (
	"bytes"
	"fmt"
)

// A JetStream message carries one event, or several joined by newlines.
// The JSON encoding never writes a raw newline (json.Marshal escapes every
// control character), so the framing is unambiguous. A request and its
// decision, or a batch of responses, then cost the stream one store and
// one acknowledgement instead of one each.

// AppendMessage appends e to the body of a message: b holds the events
// before it, or is empty.
func AppendMessage(b []byte, e *Event) ([]byte, error) {
	n := len(b)
	if n > 0 {
		b = append(b, '\n')
	}
	out, err := appendEvent(b, e)
	if err != nil {
		return b[:n], err
	}
	return out, nil
}

// DecodeMessage parses and validates every event of a message body. One
// bad event fails the message: its events were published together and are
// stored, or dead-lettered, together.
func DecodeMessage(data []byte) ([]*Event, error) {
	events := make([]*Event, 0, bytes.Count(data, []byte{'\n'})+1)
	for i := 0; ; i++ {
		line, rest, more := bytes.Cut(data, []byte{'\n'})
		e, err := Decode(line)
		if err != nil {
			if more || i > 0 {
				return nil, fmt.Errorf("event %d of the message: %w", i+1, err)
			}
			return nil, err
		}
		events = append(events, e)
		if !more {
			return events, nil
		}
		data = rest
	}
}
