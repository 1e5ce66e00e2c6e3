package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/schema/subject"
)

func TestMessageRoundTrip(t *testing.T) {
	req, dec := sample(), sample()
	req.Kind, req.Decision = KindRequest, nil
	dec.Seq++
	dec.Tenant = "line\nbreak\u2028" // escaped by the encoding, never a raw newline
	dec.Request.Args = json.RawMessage("{\n\"q\" :\n1}")
	var body []byte
	for _, e := range []*Event{req, dec} {
		var err error
		if body, err = AppendMessage(body, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := bytes.Count(body, []byte{'\n'}); n != 1 {
		t.Fatalf("two events joined with %d newlines: %s", n, body)
	}
	got, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	dec.Request.Args = json.RawMessage(`{"q":1}`) // compacted on the wire
	for i, want := range []*Event{req, dec} {
		if !reflect.DeepEqual(normal(got[i]), normal(want)) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
	single, _ := Encode(req)
	if got, err := DecodeMessage(single); err != nil || len(got) != 1 {
		t.Errorf("a single event is a message of one: %d events, %v", len(got), err)
	}
}

// normal drops what JSON does not keep (the monotonic clock, the zone's name).
func normal(e *Event) *Event {
	c := *e
	c.Time = c.Time.UTC().Round(0)
	return &c
}

func TestDecodeMessageRefusesBadFraming(t *testing.T) {
	good, _ := Encode(sample())
	bad := sample()
	bad.Instance = ""
	invalid, _ := Encode(bad)
	for name, tc := range map[string]struct {
		data []byte
		want error
		text string
	}{
		"empty":            {nil, ErrMalformed, ""},
		"trailing newline": {append(append([]byte{}, good...), '\n'), ErrMalformed, "event 2 of the message"},
		"blank line":       {bytes.Join([][]byte{good, nil, good}, []byte{'\n'}), ErrMalformed, "event 2 of the message"},
		"invalid second":   {bytes.Join([][]byte{good, invalid}, []byte{'\n'}), ErrInvalid, "event 2 of the message"},
		"two on one line":  {append(append([]byte{}, good...), good...), ErrMalformed, ""},
		"a JSON array":     {[]byte("[" + string(good) + "]"), ErrMalformed, ""},
	} {
		events, err := DecodeMessage(tc.data)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) || events != nil {
			t.Errorf("%s: %d events, err %v; want %v mentioning %q", name, len(events), err, tc.want, tc.text)
		}
	}
}

func TestDecodeMessageOnChecksTheSubject(t *testing.T) {
	req, dec := sample(), sample()
	req.Kind, req.Decision = KindRequest, nil
	dec.Seq++
	bundle := func(events ...*Event) []byte {
		var body []byte
		for _, e := range events {
			var err error
			if body, err = AppendMessage(body, e); err != nil {
				t.Fatal(err)
			}
		}
		return body
	}
	own, _ := subject.For(req.Tenant, "request")
	if got, err := DecodeMessageOn(own, bundle(req, dec)); err != nil || len(got) != 2 {
		t.Fatalf("own subject: %d events, %v", len(got), err)
	}
	other := *dec
	other.Tenant = req.Tenant + "-other"
	otherSubject, _ := subject.For(other.Tenant, "request")
	for name, tc := range map[string]struct {
		subj string
		data []byte
	}{
		"another tenant's subject":      {otherSubject, bundle(req)},
		"a smuggled event":              {own, bundle(req, &other)},
		"kind other than the subject's": {own, bundle(dec)},
		"not an event subject":          {"rampart.v1." + req.Tenant, bundle(req)},
		"wildcard in the subject":       {"rampart.v1.*.request", bundle(req)},
	} {
		if events, err := DecodeMessageOn(tc.subj, tc.data); !errors.Is(err, ErrSubjectMismatch) || events != nil {
			t.Errorf("%s: %d events, err %v; want ErrSubjectMismatch", name, len(events), err)
		}
	}
	if _, err := DecodeMessageOn(own, []byte("{")); !errors.Is(err, ErrMalformed) {
		t.Errorf("a malformed body under a good subject: %v, want ErrMalformed", err)
	}
}

// FuzzDecodeMessage: any body is refused or gives events which, bundled
// again, decode to the same events, one for each line.
func FuzzDecodeMessage(f *testing.F) {
	good, _ := Encode(sample())
	f.Add(good)
	f.Add(bytes.Join([][]byte{good, good}, []byte{'\n'}))
	f.Add([]byte("{}\n{}"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := DecodeMessage(data)
		if err != nil {
			return
		}
		if len(events) != bytes.Count(data, []byte{'\n'})+1 {
			t.Fatalf("%d events from %d lines", len(events), bytes.Count(data, []byte{'\n'})+1)
		}
		var body []byte
		for _, e := range events {
			if body, err = AppendMessage(body, e); err != nil {
				t.Fatalf("a decoded event does not encode: %v", err)
			}
		}
		again, err := DecodeMessage(body)
		if err != nil {
			t.Fatalf("re-bundled events do not decode: %v\n%s", err, body)
		}
		for i := range events {
			a, _ := Encode(events[i])
			b, _ := Encode(again[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("event %d changed on a round trip:\n%s\n%s", i, a, b)
			}
		}
	})
}

func TestDecodeRefusesAlertsWithoutAlertOrSeverity(t *testing.T) {
	for name, mutate := range map[string]func(*Event){
		"no alert":     func(e *Event) { e.Alert = nil },
		"bad severity": func(e *Event) { e.Alert.Severity = "urgent" },
	} {
		e := sample()
		e.Kind, e.Request, e.Decision = KindAlert, nil, nil
		e.Alert = &Alert{RuleID: "r", Title: "t", Severity: SeverityLow, Count: 1, Evidence: []string{"x"}}
		if err := e.Validate(); err != nil {
			t.Fatalf("%s: the valid alert was refused: %v", name, err)
		}
		mutate(e)
		if err := e.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}
