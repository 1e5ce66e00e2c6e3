package audit

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// Calls that arrive while a group is in flight are recorded together, one
// group for each mode: in as few messages as their tenants allow, in the
// chain's order; a self-batched caller goes ahead of them.
func TestCallsArrivingDuringARecordShareTheNext(t *testing.T) {
	srv := natstest.Run(t)
	p, err := Connect(t.Context(), "enf-1", Config{URL: stream.URLs(srv.URL()), OnUnavailable: Spool,
		Spool:      spool.Config{Dir: t.TempDir()},
		Checkpoint: CheckpointConfig{Every: 1 << 30, Interval: time.Hour, Idle: time.Hour}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	p.mu.Lock()
	p.inflight = maxGroupsInFlight // as if a group were being recorded
	p.mu.Unlock()
	call := func(mode, tenant string) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- p.PublishMode(context.Background(), mode,
				&event.Event{Kind: event.KindRequest, Tenant: tenant, Request: &event.Request{Method: "POST"}},
				&event.Event{Kind: event.KindDecision, Tenant: tenant, Decision: &event.Decision{Effect: event.EffectAllow}})
		}()
		return done
	}
	var waits []<-chan error
	for i := range 6 {
		waits = append(waits, call(Spool, "acme"))
		if i == 2 {
			waits = append(waits, call(Refuse, "acme"))
		}
	}
	poll.Until(t, 5*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		joined := 0
		for _, g := range p.forming {
			if g != nil {
				joined += len(g.events)
			}
		}
		if joined != 14 {
			return fmt.Errorf("%d of 14 events joined a forming group", joined)
		}
		return nil
	})
	for _, w := range waits {
		select {
		case err := <-w:
			t.Fatalf("a call returned (%v) before its group was recorded", err)
		default:
		}
	}
	// A self-batched caller (response events) does not wait for groups.
	if err := p.PublishBatch(t.Context(), &event.Event{Kind: event.KindResponse, Tenant: "acme", Response: &event.Response{Status: 200}}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.inflight = 0 // the group in flight settles
	p.launch()
	p.mu.Unlock()
	for _, w := range waits {
		if err := <-w; err != nil {
			t.Fatal(err)
		}
	}

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(t.Context())
	if info.State.Msgs != 3 {
		t.Fatalf("a batch and 7 calls of one tenant in %d messages, want 3: the batch, then a group for each mode", info.State.Msgs)
	}
	seq := uint64(0)
	for n := info.State.FirstSeq; n <= info.State.LastSeq; n++ {
		m, err := st.GetMsg(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		events, err := event.DecodeMessage(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if seq++; e.Seq != seq {
				t.Fatalf("stream message %d: seq %d, want %d: the record is out of the chain's order", n, e.Seq, seq)
			}
		}
		if bytes.Count(m.Data, []byte{'\n'})+1 != len(events) {
			t.Fatalf("message %d framing", n)
		}
	}
	if seq != 15 {
		t.Fatalf("%d events recorded, want 15", seq)
	}
}
