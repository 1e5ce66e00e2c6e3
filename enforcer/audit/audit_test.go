package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

func connect(t *testing.T, url string, timeout time.Duration) *audit.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := audit.Connect(ctx, "enf-1", audit.Config{URL: stream.URLs(url), PublishTimeout: timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// noCheckpoints configures a publisher that checkpoints only when closed,
// so a test reads only the events it published.
func noCheckpoints(url string) audit.Config {
	return audit.Config{URL: stream.URLs(url), Checkpoint: audit.CheckpointConfig{Every: 1 << 30, Interval: time.Hour, Idle: time.Hour}}
}

func request(tenant, reqID string) *event.Event {
	return &event.Event{Kind: event.KindRequest, Tenant: tenant, RequestID: reqID, Request: &event.Request{Method: "POST", Path: "/mcp"}}
}

// readAll returns the messages of the events stream that hold its first n
// events, failing after a deadline.
func readAll(t *testing.T, url string, n int) []jetstream.Msg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream.Events, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	events := 0
	for events < n {
		batch, err := c.Fetch(n-events, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
			events += bytes.Count(m.Data(), []byte{'\n'}) + 1
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d events before the deadline", events, n)
		}
	}
	return out
}

// A call's events are bundled into one message per run of one tenant: the
// record stays dense in stream order, and every message is addressed by
// its first event.
func TestPublishDenseSequenceAndBundles(t *testing.T) {
	srv := natstest.Run(t)
	p := connectWith(t, noCheckpoints(srv.URL()))

	const workers, per = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				tenant := []string{"acme", "", "a.b>"}[w%3]
				if err := p.Publish(context.Background(), request(tenant, "r"), request(tenant, "r"), request("other", "r")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	msgs := readAll(t, srv.URL(), workers*per*3)
	if len(msgs) != workers*per*2 {
		t.Errorf("%d messages for %d calls of two tenants each, want %d", len(msgs), workers*per, workers*per*2)
	}
	seq := uint64(0)
	for i, m := range msgs {
		events, err := event.DecodeMessage(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		first := events[0]
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != first.ID {
			t.Errorf("message %d: Nats-Msg-Id = %q, want its first event's %q", i, got, first.ID)
		}
		if want, _ := subject.For(first.Tenant, string(first.Kind)); m.Subject() != want {
			t.Errorf("message %d: subject = %q, want %q", i, m.Subject(), want)
		}
		for _, e := range events {
			if seq++; e.Seq != seq {
				t.Fatalf("message %d has seq %d, want %d: sequence is not dense in stream order", i, e.Seq, seq)
			}
			if e.Tenant != first.Tenant {
				t.Errorf("message %d bundles tenants %q and %q", i, first.Tenant, e.Tenant)
			}
			if e.Instance != "enf-1" {
				t.Errorf("instance = %q", e.Instance)
			}
		}
	}
}

// Large events are not bundled past the limit, so no message can outgrow
// what the server accepts because of bundling; every event still arrives,
// in order.
func TestBundlesStayUnderTheLimit(t *testing.T) {
	srv := natstest.Run(t)
	p := connectWith(t, noCheckpoints(srv.URL()))
	const n = 40
	events := make([]*event.Event, n)
	for i := range events {
		events[i] = request("acme", "r")
		events[i].Request.Args = json.RawMessage(`{"blob":"` + strings.Repeat("x", 4000+i*100) + `"}`)
	}
	if err := p.Publish(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	msgs := readAll(t, srv.URL(), n)
	if len(msgs) < 2 {
		t.Fatalf("%d events of ~%d KiB in %d message", n, 6, len(msgs))
	}
	seq := uint64(0)
	for i, m := range msgs {
		if len(m.Data()) > 64<<10 {
			t.Errorf("message %d holds %d bytes, over the 64 KiB bundle limit", i, len(m.Data()))
		}
		got, err := event.DecodeMessage(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			if seq++; e.Seq != seq {
				t.Fatalf("message %d: seq %d, want %d", i, e.Seq, seq)
			}
		}
	}
	if seq != n {
		t.Errorf("%d events stored, want %d", seq, n)
	}
}

func TestPublishInvalidCostsNoSequence(t *testing.T) {
	srv := natstest.Run(t)
	p := connect(t, srv.URL(), 2*time.Second)
	bad := &event.Event{Kind: event.KindDecision} // no Decision
	if err := p.Publish(context.Background(), request("acme", "r"), bad); err == nil {
		t.Fatal("invalid event published")
	}
	e := request("acme", "r")
	if err := p.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 {
		t.Errorf("seq = %d after a refused batch, want 1", e.Seq)
	}
}

func TestPublishWhileDownThenRecover(t *testing.T) {
	srv := natstest.Run(t)
	p := connect(t, srv.URL(), 500*time.Millisecond)
	if err := p.Publish(context.Background(), request("acme", "r1")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	err := p.Publish(context.Background(), request("acme", "r2"))
	if !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failing publish took %v", d)
	}

	srv.Restart()
	poll.Until(t, 10*time.Second, func() error {
		if err := p.Publish(context.Background(), request("acme", "r3")); err != nil {
			return fmt.Errorf("no recovery after restart: %w", err)
		}
		return nil
	})
}
