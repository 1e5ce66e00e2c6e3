package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// unmarshal is what Decode gives through encoding/json alone: the
// reference the fast path is held to.
func unmarshal(data []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// sameAsUnmarshal fails t unless the fast path either declines data or
// gives exactly json.Unmarshal's event, and Decode then agrees with
// encoding/json on the event or on failing.
func sameAsUnmarshal(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	want, wantErr := unmarshal(data)
	var got Event
	if fast = decodeFast(data, &got); fast {
		if wantErr != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v):\n%q", wantErr, data)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("fast path differs from encoding/json on\n%q\n got %#v\nwant %#v", data, &got, want)
		}
	}
	dec, err := Decode(data)
	if wantErr != nil {
		if err == nil {
			t.Fatalf("Decode accepted what encoding/json refuses (%v): %q", wantErr, data)
		}
		return fast
	}
	if verr := want.Validate(); (verr == nil) != (err == nil) || err == nil && !reflect.DeepEqual(dec, want) {
		t.Fatalf("Decode differs from encoding/json + Validate on %q:\n got %#v (%v)\nwant %#v (%v)", data, dec, err, want, verr)
	}
	return fast
}

// fullEvent sets every field of the model, alerts and checkpoints too.
func fullEvent() *Event {
	e := sample()
	e.Epoch, e.Prev = "ep1", "sha256:00"
	e.Trace.TraceState = "k=v"
	e.Identity.SessionSource, e.Identity.TaskSource = "header", "claim"
	e.Identity.Chain[0].Issuer = "https://idp"
	e.Request.Query, e.Request.Resource, e.Request.RPCKind = "a=1&b=<2>", "doc:1", "call"
	e.Request.Headers = map[string]string{"x-a": "1", "x-b": ""}
	e.Request.Prompt, e.Request.Args = "find \"ü\"\n\tin \\docs\u2028 \x01 😀", json.RawMessage(`{"q":["x",1,null,{"a":true}]}`)
	e.Request.Destination, e.Request.DataClass, e.Request.Truncated = "example.com", "pii", []string{"args"}
	e.Decision.Code, e.Decision.Shadow = "denied", []string{"p2"}
	e.Response = &Response{Status: 200, DurationNs: 1234, Bytes: -5, Outcome: OutcomeCompleted}
	e.Checkpoint = &Checkpoint{KeyID: "k1", Signature: "c2ln", Unrecorded: []uint64{3, 18446744073709551615}}
	e.Alert = &Alert{RuleID: "r", Title: "t", Severity: SeverityHigh, Tags: []string{}, Group: []GroupValue{{Field: "f", Value: "v"}},
		First: e.Time.Add(-time.Second), Last: e.Time, Count: 3, Evidence: nil}
	return e
}

// The fast path takes what the enforcer and correlator write, and gives
// exactly what encoding/json gives for it.
func TestFastDecodeTakesEncoded(t *testing.T) {
	for name, e := range map[string]*Event{"sample": sample(), "full": fullEvent()} {
		for _, enc := range []func(any) ([]byte, error){json.Marshal, func(any) ([]byte, error) { return Encode(e) }} {
			data, err := enc(e)
			if err != nil {
				t.Fatal(err)
			}
			if !sameAsUnmarshal(t, data) {
				t.Errorf("%s: fast path declined an encoded event:\n%s", name, data)
			}
		}
	}
}

// Inputs where a naive reader would differ from encoding/json: each must
// come out as encoding/json has it, by the fast path or by falling back.
func TestFastDecodeAgreesOnEdges(t *testing.T) {
	good, _ := Encode(fullEvent())
	edits := []struct{ old, new string }{
		{`"tenant":"acme"`, `"Tenant":"acme"`},                                                           // case-folded key
		{`"tenant":"acme"`, `"tenant":"acme","tenant":"b"`},                                              // repeated key
		{`"trace":{`, `"identity":{"sub":"x","chain":[{"sub":"a"},{"sub":"b","iss":"kept"}]},"trace":{`}, // repeated object: merged
		{`"tenant":"acme"`, `"tenant":"a\u0063me"`},                                                      // escape
		{`"tenant":"acme"`, "\"tenant\":\"ac\xffme\""},                                                   // invalid UTF-8
		{`"tenant":"acme"`, "\"tenant\":\"ac\tme\""},                                                     // raw control character
		{`"tenant":"acme"`, `"tenant":null`},                                                             // null into a string
		{`"tenant":"acme"`, `"tenant":1`},                                                                // wrong type
		{`"tenant":"acme"`, `"tenant":"acme","extra":{"x":[1]}`},                                         // unknown field
		{`"tenant":"acme"`, `"tenant":"\u00e9\u00E9\/\b\f\r\u2028"`}, {`"tenant":"acme"`, `"tenant":"\ud83d\ude00"`},
		{`"tenant":"acme"`, `"tenant":"\ud800x"`},
		{`"tenant":"acme"`, `"tenant":"\ude00\ud83d"`},
		{`"tenant":"acme"`, `"tenant":"\x41"`},
		{`"tenant":"acme"`, `"tenant":"\u12"`},
		{`"tenant":"acme"`, `"tenant":"\u+123"`},
		{`"tenant":"acme"`, `"tenant":"ab\`},
		{`"tenant":"acme"`, "\"tenant\":\"\xc3\\u00a9\""},
		{`"tenant":"acme"`, "\"tenant\":\"\\n\x01\""},
		{`"tenant":"acme"`, `"te\u006eant":"acme"`},
		{`"time":"2026`, `"time":"\u0032026`},
		{`"seq":184467`, `"seq":-1`},
		{`"seq":184467`, `"seq":1e3`},
		{`"seq":184467`, `"seq":1.0`},
		{`"seq":184467`, `"seq":0184467`},
		{`"seq":184467`, `"seq":18446744073709551616`},
		{`"seq":184467`, `"seq":-0`},
		{`"v":1`, `"v":-0`},
		{`"v":1`, `"v":9223372036854775808`},
		{`"status":200`, `"status":-9223372036854775808`},
		{`"time":"`, `"time":null,"x":"`},
		{`"time":"2026-11-28T10:00:00.123456789Z"`, `"time":"2026-11-28T10:00:00.123456789+01:00"`},
		{`"time":"2026-11-28T10:00:00.123456789Z"`, `"time":"2026-11-28 10:00:00Z"`},
		{`"time":"2026-11-28T10:00:00.123456789Z"`, `"time":12`},
		{`"identity":{`, `"identity":null,"x":{`},
		{`"chain":[`, `"chain":[null,`},
		{`"chain":[`, `"chain":[],"y":[`},
		{`"args":{`, `"args":null,"x":{`},
		{`"args":{"q":["x",1,null,{"a":true}]}`, `"args":  [1 , "a\"]"]`},
		{`"args":{"q":["x",1,null,{"a":true}]}`, `"args":[1,]`},
		{`"args":{"q":["x",1,null,{"a":true}]}`, `"args":tru`},
		{`"args":{"q":["x",1,null,{"a":true}]}`, `"args":"\ud800"`},
		{`"headers":{"x-a":"1","x-b":""}`, `"headers":{"x-a":"1","x-a":"2"}`},
		{`"headers":{"x-a":"1","x-b":""}`, `"headers":{}`},
		{`"headers":{"x-a":"1","x-b":""}`, `"headers":{"x-a":null}`},
		{`"truncated":["args"]`, `"truncated":[]`},
		{`"truncated":["args"]`, `"truncated":[null,"a"]`},
		{`"truncated":["args"]`, `"truncated":null`},
		{`"unrecorded":[`, `"unrecorded":[null,`},
		{`"evidence":null`, `"evidence":[]`},
		{`"trace":{`, `"trace":null,"z":{`},
		{`{"v":1,`, "{ \"v\" : 1 ,\n"},
		{`"group":[`, `"tags":[],"group":[`},
		{`"severity":"high"`, `"severity":"HIGH"`},
		{`"count":3`, `"count":3,}`},
	}
	for _, x := range edits {
		if !bytes.Contains(good, []byte(x.old)) {
			t.Fatalf("edit %q: not in %s", x.old, good)
		}
		sameAsUnmarshal(t, bytes.Replace(good, []byte(x.old), []byte(x.new), 1))
	}
	for _, data := range []string{"", "null", "{}", "[]", `{"v":1}`, `{"v":1} x`, `{"v":1} `, " \t{\"v\":1}\r\n", `{"v":1`, `{"v":1,}`,
		`{"request":{"args":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`} {
		sameAsUnmarshal(t, []byte(data))
	}
}

// FuzzFastDecode: on any input, the fast path declines or gives exactly
// json.Unmarshal's event, and Decode agrees with encoding/json.
func FuzzFastDecode(f *testing.F) {
	for _, e := range []*Event{sample(), fullEvent()} {
		data, _ := Encode(e)
		f.Add(data)
		data, _ = json.Marshal(e)
		f.Add(data)
	}
	f.Add([]byte(`{"v":1,"request":{"args":[1,{"a":"\""}],"headers":{"a":"b","a":"c"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsUnmarshal(t, data) })
}
