package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encodeCases are events whose encodings stress every omission rule and
// every escape: empty and absent sections, control characters, HTML
// characters, U+2028, invalid UTF-8, unsorted headers, raw arguments with
// space and HTML in them, times in other zones and before the epoch.
func encodeCases() []*Event {
	full := sample()
	full.Epoch, full.Prev = "01EPOCH", "sha256:00"
	full.Trace.TraceState = "k=v"
	full.Request.Query = "a=1&b=<2>"
	full.Request.Resource = "file:///x"
	full.Request.RPCKind, full.Request.Prompt = "request", "sum<m>ar\u2028ize"
	full.Request.Headers = map[string]string{"x-b": "2", "accept": "", "x-a": "\u2028\t\"\\"}
	full.Request.Args = json.RawMessage(" {\"q\" : \"<script>&\u2029\", \"n\": [1, 2.5e3, null, true]} ")
	full.Request.Destination, full.Request.DataClass = "internal", "pii"
	full.Request.Truncated = []string{"tool", "args"}
	full.Identity.SessionSource, full.Identity.TaskSource = "server", "client"
	full.Decision.Code, full.Decision.Shadow = "token_invalid", []string{"r1", ""}
	full.Response = &Response{Status: 502, DurationNs: -1, Bytes: 7, Outcome: "client_gone"}
	full.Checkpoint = &Checkpoint{KeyID: "ed25519:ab", Signature: "c2ln", Unrecorded: []uint64{1, 1 << 63}}
	full.Identity.Chain = append(full.Identity.Chain, Actor{Subject: "a", Issuer: "https://i"})

	bare := &Event{V: Version, ID: "x", Kind: KindRequest}
	empties := &Event{Identity: &Identity{Chain: []Actor{}}, Request: &Request{Headers: map[string]string{}, Args: json.RawMessage{}, Truncated: []string{}},
		Decision: &Decision{Shadow: []string{}}, Response: &Response{}, Checkpoint: &Checkpoint{Unrecorded: []uint64{}}}
	odd := &Event{Tenant: "\x00\x01\x1f\x7f\b\f\n\r\t<>&'\xff\xfe\xc3(é→😀\u2028\u2029", Time: time.Date(1, 2, 3, 4, 5, 6, 7, time.FixedZone("x", -(5*3600+30*60)))}
	zoned := &Event{Time: time.Date(2026, 11, 28, 10, 0, 0, 120000000, time.FixedZone("y", 14*3600))}
	seconds := &Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("s", 30))}
	alert := sample()
	alert.Kind, alert.Request, alert.Decision = KindAlert, nil, nil
	alert.Alert = &Alert{RuleID: "r", Title: "t<>", Severity: SeverityHigh, Tags: []string{"owasp-agentic:T2"},
		Group: []GroupValue{{"session_id", "s1"}}, First: alert.Time, Last: alert.Time, Count: 2, Evidence: []string{"a", "b"}}
	return []*Event{full, sample(), bare, empties, odd, zoned, seconds, alert}
}

func TestEncodeIsWhatJSONMarshalGives(t *testing.T) {
	for i, e := range encodeCases() {
		want, wantErr := json.Marshal(e)
		got, err := Encode(e)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s (%v)\nwant %s (%v)", i, got, err, want, wantErr)
		}
	}
}

func TestEncodeRefusesWhatJSONMarshalRefuses(t *testing.T) {
	for name, e := range map[string]*Event{
		"args not JSON": {Request: &Request{Args: json.RawMessage(`{"a":`)}},
		"year 10000":    {Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := Encode(e); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// FuzzEncode holds Encode to json.Marshal's bytes for arbitrary strings,
// numbers, arguments and times in every field kind.
func FuzzEncode(f *testing.F) {
	f.Add("acme", "user:alice", "x-a", "\u2028<&>\"\\\x00\xff", []byte(`{"q": "x"}`), int64(0), uint64(1), int64(1764324000123456789), 0)
	f.Add("", "", "", "", []byte(nil), int64(-1), uint64(1<<63), int64(-1<<63), -3600)
	f.Fuzz(func(t *testing.T, tenant, sub, header, text string, args []byte, n int64, seq uint64, unixNano int64, offset int) {
		e := sample()
		e.Tenant, e.Seq, e.Prev = tenant, seq, text
		e.Time = time.Unix(0, unixNano).In(time.FixedZone("f", offset%(30*3600)))
		e.Identity.Subject, e.Identity.Chain = sub, append(e.Identity.Chain, Actor{Subject: text, Issuer: sub})
		e.Request.Headers = map[string]string{header: text, text: header}
		e.Request.Args, e.Request.BodyBytes = args, n
		e.Request.Truncated = []string{text}
		e.Identity.SessionSource, e.Identity.TaskSource = text, tenant
		e.Request.RPCKind, e.Request.Prompt = tenant, text
		e.Decision.Reason, e.Decision.EvalNanos, e.Decision.Shadow = text, n, []string{text, tenant}
		e.Response = &Response{Status: int(n), DurationNs: n, Bytes: -n, Outcome: text}
		want, wantErr := json.Marshal(e)
		got, err := Encode(e)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("\n got %s (%v)\nwant %s (%v)", got, err, want, wantErr)
		}
	})
}
