package event

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/rampart-io/rampart/schema/subject"
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

// ErrSubjectMismatch marks a message whose events disagree with the subject
// it was stored under: a tenant other than the subject's, or a first event
// of another kind. Stream permissions and consumers filter on subjects, so
// an event must not reach a tenant's records under another tenant's name.
var ErrSubjectMismatch = errors.New("event: message does not match its subject")

// DecodeMessageOn decodes a message stored under subj and checks it against
// the subject: every event is of the subject's tenant, and the first is of
// its kind. Consumers that attribute events to tenants use this, not
// DecodeMessage.
func DecodeMessageOn(subj string, data []byte) ([]*Event, error) {
	events, err := DecodeMessage(data)
	if err != nil {
		return nil, err
	}
	tenant, kind, err := subject.Parse(subj)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSubjectMismatch, err)
	}
	if kind != string(events[0].Kind) {
		return nil, fmt.Errorf("%w: subject %q carries kind %q", ErrSubjectMismatch, subj, events[0].Kind)
	}
	for _, e := range events {
		if e.Tenant != tenant {
			return nil, fmt.Errorf("%w: subject %q carries tenant %q", ErrSubjectMismatch, subj, e.Tenant)
		}
	}
	return events, nil
}
