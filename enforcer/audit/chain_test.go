package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/enforcer/spool"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// keyFile writes a checkpoint key and returns its path and the trusted keys.
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

func connectWith(t *testing.T, cfg audit.Config) *audit.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := audit.Connect(ctx, "enf-1", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// stored decodes every event in the stream (at least n of them).
func stored(t *testing.T, url string, n int) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, m := range readAll(t, url, n) {
		events, err := event.DecodeMessage(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, events...)
	}
	return out
}

func TestChainAndSignedCheckpointsVerify(t *testing.T) {
	srv := natstest.Run(t)
	key, trusted := keyFile(t)
	p := connectWith(t, audit.Config{URL: stream.URLs(srv.URL()), Checkpoint: audit.CheckpointConfig{KeyFile: key, Every: 10, Interval: time.Hour, Idle: time.Hour}})
	// A checkpoint follows every 10 events in the background: each is
	// waited for, so that how far the next batch got before it was
	// published does not decide how many checkpoints there are.
	for i, held := 0, 0; i < 25; i++ {
		if err := p.Publish(context.Background(), request("acme", "r")); err != nil {
			t.Fatal(err)
		}
		if held++; held == 10 {
			readAll(t, srv.URL(), i+1+(i+1)/10) // the events so far and their checkpoints
			held = 0
		}
	}
	p.Close() // a final checkpoint
	events := stored(t, srv.URL(), 28)
	rep := chain.Check(events, chain.Options{Keys: trusted})
	if !rep.Clean() || rep.Checkpoints < 3 || rep.Events < 28 {
		t.Fatalf("report %+v", rep)
	}
	if last := events[len(events)-1]; last.Kind != event.KindCheckpoint {
		t.Fatalf("last event is %s, want the final checkpoint", last.Kind)
	}
}

func TestRefusedEventsAreReportedUnrecorded(t *testing.T) {
	srv := natstest.Run(t)
	key, trusted := keyFile(t)
	p := connectWith(t, audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond,
		Checkpoint: audit.CheckpointConfig{KeyFile: key, Interval: time.Hour, Idle: time.Hour}})
	if err := p.Publish(context.Background(), request("acme", "before")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	if err := p.Publish(context.Background(), request("acme", "lost"), request("acme", "lost")); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	poll.Until(t, 10*time.Second, func() error {
		if err := p.Publish(context.Background(), request("acme", "after")); err != nil {
			return fmt.Errorf("no recovery: %w", err)
		}
		return nil
	})
	p.Close()
	rep := chain.Check(stored(t, srv.URL(), 3), chain.Options{Keys: trusted})
	if !rep.Clean() {
		t.Fatalf("findings %v", rep.Findings)
	}
	var unrecorded []uint64
	for _, f := range rep.Findings {
		unrecorded = append(unrecorded, f.Seq)
	}
	// 2 and 3 were refused while NATS was down, and so was every retry of
	// "after" until the client reconnected.
	if len(unrecorded) < 2 || unrecorded[0] != 2 || unrecorded[1] != 3 {
		t.Fatalf("unrecorded %v, want it to start [2 3]", unrecorded)
	}
}

func TestSpoolRecordsWhileNATSIsDownAndReplaysInOrder(t *testing.T) {
	srv := natstest.Run(t)
	dir := t.TempDir()
	cfg := audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond, OnUnavailable: audit.Spool,
		Spool: spool.Config{Dir: dir}, Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}}
	p := connectWith(t, cfg)
	if err := p.Publish(context.Background(), request("acme", "1")); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	for i := 0; i < 50; i++ {
		if err := p.Publish(context.Background(), request("acme", "down"), request("acme", "down")); err != nil {
			t.Fatalf("publish while down with a spool: %v", err)
		}
	}
	srv.Restart()
	events := stored(t, srv.URL(), 101)
	for i, e := range events[:101] {
		if e.Seq != uint64(i+1) {
			t.Fatalf("stream position %d holds seq %d: replay out of order", i, e.Seq)
		}
	}
	if rep := chain.Check(events, chain.Options{}); !rep.Clean() || len(rep.Findings) != 0 {
		t.Fatalf("findings %v", rep.Findings)
	}
}

func TestSpoolLeftByACrashIsReplayedByTheNextRun(t *testing.T) {
	srv := natstest.Run(t)
	dir := t.TempDir()
	cfg := audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond, OnUnavailable: audit.Spool,
		Spool: spool.Config{Dir: dir}, Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}}
	srv.Shutdown()
	srv.WaitForShutdown()
	// Connect needs the server; bring it up, connect, then take it away.
	srv.Restart()
	p := connectWith(t, cfg)
	srv.Shutdown()
	srv.WaitForShutdown()
	for i := 0; i < 20; i++ {
		if err := p.Publish(context.Background(), request("acme", "spooled")); err != nil {
			t.Fatal(err)
		}
	}
	// Abandon p without Close (a crash keeps the spool as it is); a new
	// run on the same spool replays it once NATS is back.
	srv.Restart()
	p2 := connectWith(t, cfg)
	_ = p2
	events := stored(t, srv.URL(), 20)
	first := map[string]int{}
	for _, e := range events {
		first[e.Epoch]++
	}
	if first[p.Epoch()] != 20 {
		t.Fatalf("events of the crashed run in the stream: %d, want 20 (%v)", first[p.Epoch()], first)
	}
}

func TestFullSpoolRefuses(t *testing.T) {
	srv := natstest.Run(t)
	cfg := audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond, OnUnavailable: audit.Spool,
		Spool: spool.Config{Dir: t.TempDir(), MaxBytes: 4096}, Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}}
	p := connectWith(t, cfg)
	srv.Shutdown()
	srv.WaitForShutdown()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = p.Publish(context.Background(), request("acme", "x"))
	}
	if !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, spool.ErrFull) {
		t.Fatalf("err = %v, want ErrUnavailable wrapping spool.ErrFull", err)
	}
}

func TestPerCallModeOverridesTheDefault(t *testing.T) {
	srv := natstest.Run(t)
	cfg := audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond, OnUnavailable: audit.Spool,
		Spool: spool.Config{Dir: t.TempDir()}, Checkpoint: audit.CheckpointConfig{Interval: time.Hour, Idle: time.Hour}}
	p := connectWith(t, cfg)
	srv.Shutdown()
	srv.WaitForShutdown()
	if err := p.PublishMode(context.Background(), audit.Refuse, request("acme", "sensitive")); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("refuse mode while NATS is down: %v, want ErrUnavailable", err)
	}
	if err := p.PublishMode(context.Background(), "", request("acme", "ordinary")); err != nil {
		t.Fatalf("default (spool) mode while NATS is down: %v", err)
	}
	// Without a spool, asking to spool still refuses.
	srv.Restart()
	plain := connectWith(t, audit.Config{URL: stream.URLs(srv.URL()), PublishTimeout: 300 * time.Millisecond})
	srv.Shutdown()
	srv.WaitForShutdown()
	if err := plain.PublishMode(context.Background(), audit.Spool, request("acme", "x")); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("spool mode without a spool: %v, want ErrUnavailable", err)
	}
}
