package stream_test

import (
	"context"
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
