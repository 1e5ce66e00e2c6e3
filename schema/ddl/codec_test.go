package ddl_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

func decode(t *testing.T, b []byte) (*event.Event, error) {
	t.Helper()
	r := ddl.Row{}
	err := ddl.NewDecoder(bufio.NewReader(bytes.NewReader(b))).Decode(ddl.EventFields, &r)
	return r.Event, err
}

// A row written from an event reads back as that event, every field.
func TestRowBinaryRoundTrip(t *testing.T) {
	full := benchEvent()
	full.Request.Args = json.RawMessage(`{"q":"é"}`)
	full.Request.Truncated = []string{"args"}
	full.Decision.Shadow = []string{"audit"}
	full.Response = &event.Response{Status: -3, DurationNs: 1 << 40, Bytes: -1, Outcome: "client_gone"}
	cp := benchEvent()
	cp.Kind = event.KindCheckpoint
	cp.Checkpoint = &event.Checkpoint{KeyID: "k", Signature: "sig", Unrecorded: []uint64{1, 1 << 63}}
	emptyCP := &event.Event{V: event.Version, ID: "x", Kind: event.KindCheckpoint, Time: full.Time}
	alert := benchEvent()
	alert.Kind, alert.Decision = event.KindAlert, nil
	alert.Alert = &event.Alert{RuleID: "probing", Title: "Probing", Severity: event.SeverityCritical, Tags: []string{"T2", "L3"},
		Group: []event.GroupValue{{Field: "session_id", Value: "s"}, {Field: "tool", Value: ""}},
		First: full.Time.Add(-time.Hour).Truncate(time.Microsecond), Last: full.Time.Truncate(time.Microsecond), Count: 12, Evidence: []string{"a", "b"}}
	emptyAlert := &event.Event{V: event.Version, ID: "y", Kind: event.KindAlert, Time: full.Time}
	for name, e := range map[string]*event.Event{"full": full, "checkpoint": cp, "empty checkpoint": emptyCP, "alert": alert, "empty alert": emptyAlert} {
		t.Run(name, func(t *testing.T) {
			b := ddl.AppendRowBinary(nil, ddl.EventFields, &ddl.Row{Event: e})
			got, err := decode(t, b)
			if err != nil {
				t.Fatal(err)
			}
			want := *e
			want.Time = e.Time.Truncate(time.Microsecond) // what a row keeps
			for _, p := range []any{&want.Identity, &want.Request, &want.Decision, &want.Response} {
				switch p := p.(type) { // read back, absent sections are empty ones
				case **event.Identity:
					if *p == nil {
						*p = &event.Identity{}
					}
				case **event.Request:
					if *p == nil {
						*p = &event.Request{}
					}
				case **event.Decision:
					if *p == nil {
						*p = &event.Decision{}
					}
				case **event.Response:
					if *p == nil {
						*p = &event.Response{}
					}
				}
			}
			if e.Kind == event.KindCheckpoint && want.Checkpoint == nil {
				want.Checkpoint = &event.Checkpoint{}
			}
			if e.Kind == event.KindAlert && want.Alert == nil {
				want.Alert = &event.Alert{}
			}
			if !reflect.DeepEqual(got, &want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(&want)
				t.Fatalf("read back\n %s\nwant\n %s", gj, wj)
			}
		})
	}
}

// Bad rows are refused with an error, never a panic or a huge allocation.
func TestDecodeRefusesBadRows(t *testing.T) {
	good := ddl.AppendRowBinary(nil, ddl.EventFields, &ddl.Row{Event: benchEvent()})
	// chain_subjects and chain_issuers of unequal length.
	e := benchEvent()
	row := ddl.AppendRowBinary(nil, ddl.EventFields[:15], &ddl.Row{Event: e}) // through chain_subjects
	if ddl.EventFields[14].Name != "chain_subjects" {
		t.Fatalf("column 14 is %s", ddl.EventFields[14].Name)
	}
	row = append(row, 1, 0) // one issuer for two subjects
	row = ddl.AppendRowBinary(row, ddl.EventFields[16:], &ddl.Row{Event: e})
	for name, tc := range map[string]struct {
		row  []byte
		want string
	}{
		"truncated":      {good[:len(good)-3], "EOF"},
		"pairs disagree": {row, "disagree in length"},
		"huge string":    {binary.AppendUvarint(nil, 1<<40), "string of"},
		"huge array":     {append(bytes.Clone(good[:bytes.Index(good, []byte("user:alice"))-1]), binary.AppendUvarint(nil, 1<<62)...), "string of"},
		"bad uvarint":    {bytes.Repeat([]byte{0xff}, 11), "overflow"},
		"empty":          {nil, "EOF"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decode(t, tc.row)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// The columns of each chain form follow all those of the form before, and
// every column with a value read back is covered by the chain.
func TestEventFieldsAreTheCoveredColumns(t *testing.T) {
	last := 0
	for _, c := range ddl.EventFields {
		if c.Chain < last {
			t.Errorf("%s (form %d) after a column of form %d", c.Name, c.Chain, last)
		}
		last = c.Chain
	}
	if len(ddl.EventColumns) != len(ddl.Events) {
		t.Fatal("EventColumns and Events differ")
	}
}

// What the collector adds to an event reads back too, from a row of every
// column.
func TestRowBinaryRoundTripOfTheCollectorsColumns(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 7, 0, time.UTC)
	in := ddl.Row{Event: benchEvent(), StreamSeq: 99, CollectedAt: at,
		Agent: ddl.Agent{Owner: "bob", Team: "research", Purpose: "p", RiskTier: "low", Environment: "prod", Registered: true, Inventory: "v1"}}
	b := ddl.AppendRowBinary(nil, ddl.Events, &in)
	var out ddl.Row
	if err := ddl.NewDecoder(bufio.NewReader(bytes.NewReader(b))).Decode(ddl.Events, &out); err != nil {
		t.Fatal(err)
	}
	if out.StreamSeq != 99 || !out.CollectedAt.Equal(at) || out.Agent != in.Agent || out.Event.ID != in.Event.ID {
		t.Fatalf("read back %+v", out)
	}
	if vals := ddl.EventRow(in.Event, 1, at); len(vals) != len(ddl.Events) {
		t.Fatalf("%d values for %d columns", len(vals), len(ddl.Events))
	}
}
