package stream_test

import (
	"context"
	"testing"

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
