package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/natstest"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

func connect(t *testing.T, url string, timeout time.Duration) *audit.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := audit.Connect(ctx, "enf-1", audit.Config{URL: url, PublishTimeout: timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func request(tenant, reqID string) *event.Event {
	return &event.Event{Kind: event.KindRequest, Tenant: tenant, RequestID: reqID, Request: &event.Request{Method: "POST", Path: "/mcp"}}
}

// readAll returns the n messages of the events stream, failing after a deadline.
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
	for len(out) < n {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d events before the deadline", len(out), n)
		}
	}
	return out
}

func TestPublishDenseSequence(t *testing.T) {
	srv := natstest.Run(t)
	p := connect(t, srv.URL(), 2*time.Second)

	const workers, per = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				tenant := []string{"acme", "", "a.b>"}[w%3]
				if err := p.Publish(context.Background(), request(tenant, "r"), request(tenant, "r")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	msgs := readAll(t, srv.URL(), workers*per*2)
	for i, m := range msgs {
		e, err := event.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d: sequence is not dense in stream order", i, e.Seq)
		}
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != e.ID {
			t.Errorf("Nats-Msg-Id = %q, want %q", got, e.ID)
		}
		if want, _ := subject.For(e.Tenant, string(e.Kind)); m.Subject() != want {
			t.Errorf("subject = %q, want %q", m.Subject(), want)
		}
		if e.Instance != "enf-1" {
			t.Errorf("instance = %q", e.Instance)
		}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Publish(context.Background(), request("acme", "r3"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not a wait for an event
	}
}
