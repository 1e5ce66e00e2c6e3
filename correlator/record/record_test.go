package record_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/correlator/record"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

func keyFile(t *testing.T) (string, map[string]ed25519.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, map[string]ed25519.PublicKey{chain.KeyID(pub): pub}
}

// setup starts JetStream and connects without a reconnect buffer, so a
// publish made while the server is away is lost, not sent later.
func setup(t *testing.T) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Run(t)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(context.Background(), js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func alert(id, tenant string) *event.Event {
	return &event.Event{ID: id, Kind: event.KindAlert, Tenant: tenant, Time: time.Now(),
		Alert: &event.Alert{RuleID: "r1", Title: "t", Severity: event.SeverityHigh, Count: 1, Evidence: []string{"ev1"}}}
}

// stored reads every event the stream holds.
func stored(t *testing.T, js jetstream.JetStream) []*event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Event
	for n := uint64(0); n < info.State.Msgs; n++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		evs, err := event.DecodeMessageOn(m.Subject(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

// An alert raised twice is stored once, and the second costs no sequence
// number: the stored chain is whole and its checkpoints verify.
func TestDuplicateAlertTakesNoSequenceNumber(t *testing.T) {
	_, js := setup(t)
	path, keys := keyFile(t)
	p, err := record.New(js, "cor-a", record.Config{KeyFile: path, Interval: time.Hour, Idle: time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		id   string
		want record.Outcome
		seq  uint64
	}{{"A1", record.Recorded, 1}, {"A1", record.Duplicate, 0}, {"A2", record.Recorded, 2}, {"A2", record.Duplicate, 0}, {"A3", record.Recorded, 3}} {
		e := alert(c.id, "acme")
		got, err := p.Publish(ctx, e)
		if err != nil || got != c.want || (c.want == record.Recorded && e.Seq != c.seq) {
			t.Fatalf("%s: outcome %v seq %d err %v, want %v seq %d", c.id, got, e.Seq, err, c.want, c.seq)
		}
	}
	p.Close()
	events := stored(t, js)
	if len(events) != 4 { // three alerts and the final checkpoint
		t.Fatalf("%d events stored", len(events))
	}
	rep := chain.Check(events, chain.Options{Keys: keys})
	if len(rep.Findings) != 0 || rep.Checkpoints != 1 {
		t.Fatalf("chain report %+v", rep)
	}
}

// A publish that meets no server is retried with the same bytes until the
// server is back, and recorded once.
func TestPublishRetriesThroughAnOutage(t *testing.T) {
	srv, js := setup(t)
	path, keys := keyFile(t)
	p, err := record.New(js, "cor-a", record.Config{KeyFile: path, Interval: time.Hour, Idle: time.Hour, PublishTimeout: 200 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(context.Background(), alert("B1", "acme")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	done := make(chan error, 1)
	e := alert("B2", "acme")
	go func() { _, err := p.Publish(context.Background(), e); done <- err }()
	time.Sleep(500 * time.Millisecond) // let attempts fail against the stopped server
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publish never completed")
	}
	p.Close()
	events := stored(t, js)
	rep := chain.Check(events, chain.Options{Keys: keys})
	if len(events) != 3 || len(rep.Findings) != 0 {
		t.Fatalf("%d events, findings %v", len(events), rep.Findings)
	}
}

// A publish given up (its context ended) keeps its number, reported as
// unrecorded by the next checkpoint, so the gap is not taken for tampering.
func TestGivenUpPublishIsReportedUnrecorded(t *testing.T) {
	srv, js := setup(t)
	path, keys := keyFile(t)
	p, err := record.New(js, "cor-a", record.Config{KeyFile: path, Interval: time.Hour, Idle: time.Hour, PublishTimeout: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := p.Publish(ctx, alert("C1", "acme")); err == nil {
		t.Fatal("published with no server")
	}
	srv.Restart()
	if _, err := p.Publish(context.Background(), alert("C2", "acme")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	rep := chain.Check(stored(t, js), chain.Options{Keys: keys})
	if !rep.Clean() || len(rep.Findings) != 1 || rep.Findings[0].Seq != 1 || rep.Findings[0].Kind != chain.Unrecorded {
		t.Fatalf("findings %v", rep.Findings)
	}
}
