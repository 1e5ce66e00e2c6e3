package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// pipelineRig is a stream holding n numbered messages and a durable
// consumer on it whose ack wait outlasts any test: a message comes back
// only when it is nak'ed, never by timing out.
func pipelineRig(t *testing.T, n int) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	js := natstest.Run(t).JetStream()
	ctx := context.Background()
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := js.Publish(ctx, "rampart.v1.acme.decision", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := stream.Durable(ctx, js, "pipeline", stream.DeliverAll, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return js, c
}

// committed counts what commits stored, by message.
type committed struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *committed) add(b stream.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range b {
		c.n[string(m.Data())]++
	}
}

func (c *committed) check(want int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i <= want; i++ {
		if got := c.n[strconv.Itoa(i)]; got != 1 {
			return fmt.Errorf("message %d committed %d times (of %d distinct committed)", i, got, len(c.n))
		}
	}
	return nil
}

func payloads(_ context.Context, b stream.Batch) ([]string, error) {
	out := make([]string, len(b))
	for i, m := range b {
		out[i] = string(m.Data())
	}
	return out, nil
}

func mergePayloads(a, b []string) []string { return append(a, b...) }

func pipelineOptions() stream.BatchOptions {
	return stream.BatchOptions{Size: 5, MaxWait: 50 * time.Millisecond, RetryDelay: 50 * time.Millisecond}
}

func TestPipelinedRedeliversAFailedBatchAndAcksTheRest(t *testing.T) {
	const n = 60
	js, c := pipelineRig(t, n)
	got := &committed{n: map[string]int{}}
	var failOnce sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- stream.ConsumePipelined(ctx, c, pipelineOptions(), 2, payloads, mergePayloads, func(_ context.Context, b stream.Batch, p []string) error {
			if len(p) != len(b) {
				return fmt.Errorf("merged %d payloads for %d messages", len(p), len(b))
			}
			for _, s := range p {
				failed := false
				if s == "7" {
					failOnce.Do(func() { failed = true })
				}
				if failed {
					return errors.New("the database refused the batch")
				}
			}
			got.add(b)
			return nil
		})
	}()
	poll.Until(t, 30*time.Second, func() error { return got.check(n) })
	// Every message acknowledged: nothing pending or awaiting an ack.
	poll.Until(t, 30*time.Second, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != n {
			return fmt.Errorf("consumer: %d pending, %d unacknowledged, ack floor %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumePipelined returned %v, want context.Canceled", err)
	}
	if err := got.check(n); err != nil {
		t.Fatal(err)
	}
	_ = js
}

func TestPipelinedHandsBackWhatItHeldWhenStopped(t *testing.T) {
	const n = 40
	_, c := pipelineRig(t, n)
	// The first process prepares batches ahead while its first commit
	// hangs until it is stopped: it holds three or four batches unacked.
	ctx, cancel := context.WithCancel(context.Background())
	holding := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- stream.ConsumePipelined(ctx, c, pipelineOptions(), 2, payloads, nil, func(ctx context.Context, _ stream.Batch, _ []string) error {
			once.Do(func() { close(holding) })
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-holding
	poll.Until(t, 30*time.Second, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending < 3*pipelineOptions().Size {
			return fmt.Errorf("%d messages held, want the commit's and those prepared ahead", info.NumAckPending)
		}
		return nil
	})
	cancel()
	<-done
	// A second process on the consumer gets every message, now, not after
	// the hour-long ack wait.
	got := &committed{n: map[string]int{}}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		_ = stream.ConsumePipelined(ctx2, c, pipelineOptions(), 2, payloads, mergePayloads, func(_ context.Context, b stream.Batch, _ []string) error {
			got.add(b)
			return nil
		})
	}()
	poll.Until(t, 30*time.Second, func() error { return got.check(n) })
}

func TestBatchesFinishTheStoreUnderWayWhenStopped(t *testing.T) {
	const n = 20
	_, c := pipelineRig(t, n)
	got := &committed{n: map[string]int{}}
	// The first batch's insert becomes visible only after the consumer is
	// stopped, and its return reports the context it ran under, as a
	// database client does: a canceled one would leave the stored batch
	// to be redelivered and stored again.
	ctx, cancel := context.WithCancel(context.Background())
	storing, stopped := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- stream.ConsumeBatches(ctx, c, pipelineOptions(), func(hctx context.Context, b stream.Batch) error {
			first := false
			once.Do(func() { first = true; close(storing) })
			if first {
				<-stopped
			}
			got.add(b)
			return hctx.Err()
		})
	}()
	<-storing
	cancel()
	close(stopped)
	<-done
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		_ = stream.ConsumeBatches(ctx2, c, pipelineOptions(), func(_ context.Context, b stream.Batch) error {
			got.add(b)
			return nil
		})
	}()
	poll.Until(t, 30*time.Second, func() error { return got.check(n) })
}

// paddedRig is a stream holding a message per entry of sizes, numbered
// from 1 ("<i> " then that many padding bytes), and a durable consumer
// named name on it whose ack wait outlasts any test.
func paddedRig(t *testing.T, name string, sizes []int) jetstream.Consumer {
	t.Helper()
	js := natstest.Run(t).JetStream()
	ctx := context.Background()
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		body := append([]byte(strconv.Itoa(i+1)+" "), make([]byte, n)...)
		if _, err := js.Publish(ctx, "rampart.v1.acme.decision", body); err != nil {
			t.Fatal(err)
		}
	}
	c, err := stream.Durable(ctx, js, name, stream.DeliverAll, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Large messages: a batch holds no more of them than its byte bound,
// whatever its message count allows, so what a consumer holds in flight
// is bounded by bytes, not by how large its clients made their calls.
func TestBatchesBoundedByBytes(t *testing.T) {
	const n, size, maxBytes = 40, 100 << 10, 1 << 20
	c := paddedRig(t, "bytes", slices.Repeat([]int{size}, n))
	ctx := context.Background()
	o := stream.BatchOptions{Size: 1000, MaxBytes: maxBytes, MaxWait: 200 * time.Millisecond, RetryDelay: 50 * time.Millisecond}
	var mu sync.Mutex
	seen, largest := 0, 0
	run, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = stream.ConsumeBatches(run, c, o, func(_ context.Context, b stream.Batch) error {
			bytes := 0
			for _, m := range b {
				bytes += len(m.Data())
			}
			mu.Lock()
			defer mu.Unlock()
			seen += len(b)
			largest = max(largest, bytes)
			return nil
		})
	}()
	poll.Until(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if seen < n {
			return fmt.Errorf("%d of %d messages handled", seen, n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if seen != n || largest > maxBytes {
		t.Fatalf("%d messages handled, largest batch %d bytes: want %d, at most %d", seen, largest, n, maxBytes)
	}
}

// A message larger than the byte bound (stored before max_payload was
// lowered, or by a server allowing more) still arrives, alone, and those
// behind it with it: the bound never holds up the stream.
func TestBatchesDeliverAMessageLargerThanTheBound(t *testing.T) {
	const maxBytes = 64 << 10
	sizes := []int{10, 3 * maxBytes, 10, 10, 10}
	c := paddedRig(t, "oversized", sizes)
	ctx := context.Background()
	o := stream.BatchOptions{Size: 1000, MaxBytes: maxBytes, MaxWait: 2 * time.Second, RetryDelay: 50 * time.Millisecond}
	got := &committed{n: map[string]int{}}
	run, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = stream.ConsumeBatches(run, c, o, func(_ context.Context, b stream.Batch) error {
			for _, m := range b {
				id, _, _ := strings.Cut(string(m.Data()), " ")
				got.mu.Lock()
				got.n[id]++
				got.mu.Unlock()
			}
			return nil
		})
	}()
	poll.Until(t, 20*time.Second, func() error { return got.check(len(sizes)) })
}
