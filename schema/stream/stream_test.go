package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

func TestEnsureIsIdempotent(t *testing.T) {
	js := natstest.Run(t).JetStream()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		s, err := stream.Ensure(ctx, js, stream.Defaults())
		if err != nil {
			t.Fatalf("ensure #%d: %v", i+1, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Storage != jetstream.FileStorage || cfg.Duplicates != stream.Defaults().DuplicateWindow {
			t.Fatalf("unexpected config: %+v", cfg)
		}
	}
	// A duplicate Nats-Msg-Id inside the window is stored once.
	for i := 0; i < 2; i++ {
		ack, err := js.Publish(ctx, "rampart.v1.acme.request", []byte("{}"), jetstream.WithMsgID("id-1"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != (i == 1) {
			t.Fatalf("publish #%d duplicate=%v", i+1, ack.Duplicate)
		}
	}
}

func TestRevocationKeysRoundTrip(t *testing.T) {
	for _, c := range []struct{ tenant, task string }{{"acme", "t-1"}, {"", "x"}, {"a.b", "task with spaces/and.dots*>"}} {
		k := stream.TaskRevocationKey(c.tenant, c.task)
		if strings.Trim(k, "-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Fatalf("key %q has characters a KV key may not", k)
		}
		tenant, task, jti, err := stream.ParseRevocationKey(k)
		if err != nil || tenant != c.tenant || task != c.task || jti != "" {
			t.Fatalf("%q -> %q %q %q %v", k, tenant, task, jti, err)
		}
	}
	_, _, jti, err := stream.ParseRevocationKey(stream.JTIRevocationKey("abc.def"))
	if err != nil || jti != "abc.def" {
		t.Fatalf("jti round trip: %q %v", jti, err)
	}
	for _, bad := range []string{"", "task.", "task.YQ", "jti.", "jti.***", "other.x"} {
		if _, _, _, err := stream.ParseRevocationKey(bad); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// Task keys are valid KV keys whatever the tenant and id, and no two
// (tenant, task) pairs share one: "a.b"/"c" is not "a"/"b.c".
func TestTaskKeysDistinct(t *testing.T) {
	pairs := [][2]string{{"a.b", "c"}, {"a", "b.c"}, {"acme", "T-1"}, {"acme", "t-1"}, {"", "x"}, {"x", ""}, {"acme", "t 1"}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := stream.TaskKey(p[0], p[1])
		if strings.Trim(k, "-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
			t.Fatalf("key %q has characters a KV key may not", k)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("%q and %q share key %q", p, other, k)
		}
		seen[k] = p
	}
}

// lostCreate is a JetStream on which another component creates each stream
// (with its own settings) between this one's lookup and its create, as
// when an enforcer, a collector and a correlator start together.
type lostCreate struct {
	jetstream.JetStream
	other func(jetstream.StreamConfig) jetstream.StreamConfig
	raced map[string]bool
}

func (l *lostCreate) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if l.raced[cfg.Name] {
		return l.JetStream.CreateOrUpdateStream(ctx, cfg)
	}
	l.raced[cfg.Name] = true
	if _, err := l.JetStream.Stream(ctx, cfg.Name); err == nil {
		return nil, errors.New("stream exists before the race")
	}
	if _, err := l.JetStream.CreateStream(ctx, l.other(cfg)); err != nil {
		return nil, err
	}
	return l.JetStream.CreateStream(ctx, cfg) // what follows our lookup's "not found"
}

// TestEnsureAfterALostCreate: a component whose create of a stream loses to
// another's starts anyway, with the stream as it configures it.
func TestEnsureAfterALostCreate(t *testing.T) {
	js := &lostCreate{JetStream: natstest.Run(t).JetStream(), raced: map[string]bool{},
		other: func(c jetstream.StreamConfig) jetstream.StreamConfig { c.MaxAge = time.Hour; return c }}
	s, err := stream.Ensure(context.Background(), js, stream.Defaults())
	if err != nil {
		t.Fatalf("ensure after a lost create: %v", err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != stream.Defaults().MaxAge {
		t.Fatalf("max age %v, want this component's %v", got, stream.Defaults().MaxAge)
	}
	if !js.raced[stream.Events] || !js.raced[stream.DeadLetter] {
		t.Fatalf("raced %v, want both streams", js.raced)
	}
}

// Rounds of reconnect attempts back off from 100 ms, doubling, to at most
// 2 s, each with up to a quarter of jitter, so a fleet that lost its server
// neither hammers it nor waits long once it is back.
func TestReconnectDelayBacksOffBounded(t *testing.T) {
	base := 100 * time.Millisecond
	for attempts := 0; attempts < 50; attempts++ {
		for range 200 {
			if d := stream.ReconnectDelay(attempts); d < base || d > base+base/4 {
				t.Fatalf("attempt %d: delay %v, want within [%v, %v]", attempts, d, base, base+base/4)
			}
		}
		base = min(2*base, 2*time.Second)
	}
}

// A byte bound below what one message may take on the server would leave
// such a message undeliverable, holding up every message behind it: the
// reader refuses to start with it, and the configuration to load it.
func TestBatchMaxBytesCoversTheLargestMessage(t *testing.T) {
	srv := natstest.Run(t)
	src := stream.DefaultSource("bytes")
	src.NATSURL = stream.URLs(srv.URL())
	for _, bad := range []int{0, -1, 1<<20 - 1, 1<<30 + 1} {
		s := src
		s.BatchMaxBytes = bad
		if err := s.Validate(); err == nil {
			t.Errorf("batch_max_bytes %d accepted", bad)
		}
	}
	src.BatchMaxBytes = 1 << 20 // valid, but not above the server's 1 MiB max_payload with room for the subject
	if r, err := stream.Open(context.Background(), src, "test"); err == nil {
		r.Close()
		t.Fatal("opened with batch_max_bytes no larger than the server's max_payload")
	} else if !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("error %q does not say why", err)
	}
	src.BatchMaxBytes = stream.DefaultSource("bytes").BatchMaxBytes
	r, err := stream.Open(context.Background(), src, "test")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}
