package collector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestCollectsAlertsOfACorrelatorChain: alerts published by a correlator
// instance on rampart.v1.<tenant>.alert are stored like every event, in
// its chain (whose skipped sequence numbers are flagged as an enforcer's
// are); an alert published again under another message id shows once;
// malformed alerts, and an alert on another kind's subject, are
// dead-lettered with their reason.
func TestCollectsAlertsOfACorrelatorChain(t *testing.T) {
	addr, _ := chtest.Server(t)
	r := newRig(t, addr)
	db := r.ch.Database()
	ctx := context.Background()
	linker := chain.NewLinker("corr-1", "01EPOCHCORR")
	alert := func(tenant string, i int) *event.Event {
		at := time.Now().Truncate(time.Microsecond)
		return &event.Event{V: event.Version, ID: r.ids.New(at), Kind: event.KindAlert, Time: at, Tenant: tenant,
			Alert: &event.Alert{RuleID: "probing", Title: "Probing", Severity: event.SeverityHigh,
				Group: []event.GroupValue{{Field: "session_id", Value: fmt.Sprint("s-", i)}}, First: at.Add(-time.Second), Last: at,
				Count: 2, Evidence: []string{"e1", "e2"}}}
	}
	send := func(subj string, e *event.Event, msgID string) {
		t.Helper()
		data, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.js.Publish(ctx, subj, data, jetstream.WithMsgID(msgID)); err != nil {
			t.Fatal(err)
		}
	}
	var published []*event.Event
	for i, tenant := range []string{"acme", "globex", "acme", "acme"} {
		e := alert(tenant, i)
		linker.Link(e)
		if i == 2 {
			continue // lost before the stream: seq 3 never arrives
		}
		subj, _ := subject.For(tenant, string(e.Kind))
		send(subj, e, e.ID)
		published = append(published, e)
	}
	// The first again, under another message id (past the stream's
	// duplicate window, say): stored twice, shown once.
	again := published[0]
	send("rampart.v1.acme.alert", again, "again-"+again.ID)

	bad := func(edit func(e *event.Event)) *event.Event {
		e := alert("acme", 9)
		e.Instance, e.Epoch, e.Seq = "corr-x", "01EPOCHX", 1
		edit(e)
		return e
	}
	send("rampart.v1.acme.alert", bad(func(e *event.Event) { e.Alert = nil }), "bad-1")
	send("rampart.v1.acme.alert", bad(func(e *event.Event) { e.Alert.Severity = "urgent" }), "bad-2")
	send("rampart.v1.acme.decision", bad(func(e *event.Event) {}), "bad-3")
	send("rampart.v1.globex.alert", bad(func(e *event.Event) {}), "bad-4")

	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	r.start(t, addr)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".events_raw", 4)
	waitFor(t, r.ch, "SELECT count() FROM "+db+".alerts", 3)
	if n := count(t, r.ch, "SELECT count() FROM "+db+".alerts WHERE instance = 'corr-1' AND rule_id = 'probing' AND matched = 2 AND length(evidence) = 2"); n != 3 {
		t.Fatalf("%d alerts stored whole, want 3", n)
	}
	if n := count(t, r.ch, "SELECT count() FROM "+db+".alerts WHERE tenant = 'globex'"); n != 1 {
		t.Fatalf("%d globex alerts, want 1", n)
	}

	dlq, err := r.js.Stream(ctx, stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var info *jetstream.StreamInfo
	for info == nil || info.State.Msgs < 4 && time.Now().Before(deadline) {
		if info, err = dlq.Info(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("dead-letter stream holds %d messages, want 4", info.State.Msgs)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil || m.Header.Get(collector.HeaderReason) == "" {
			t.Fatalf("dead letter %d without reason: %v", seq, err)
		}
	}
	got := eventCounts(t, reader)
	if got["stored"] != 4 || got["dead_lettered"] != 4 || got[""] != 1 {
		t.Fatalf("metrics = %v, want 4 stored, 4 dead-lettered, 1 sequence number skipped", got)
	}
}
