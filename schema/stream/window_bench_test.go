package stream_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// BenchmarkDuplicateWindowMemory measures what the events stream's
// de-duplication window costs the NATS server: the heap held per message
// id it remembers, with ids as the enforcer sets them (event ULIDs). The
// baseline is the same messages published without an id, in the same
// server. Size duplicate_window with it: ids held = events/s × window.
func BenchmarkDuplicateWindowMemory(b *testing.B) {
	const n = 200_000
	js := natstest.Run(b).JetStream()
	ctx := context.Background()
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		b.Fatal(err)
	}
	ids := &event.IDSource{}
	publish := func(withID bool) uint64 {
		before := heapInUse()
		var last jetstream.PubAckFuture
		for i := range n {
			m := nats.NewMsg("rampart.v1.acme.request")
			m.Data = []byte(`{"i":` + strconv.Itoa(i) + `}`)
			if withID {
				m.Header.Set(jetstream.MsgIDHeader, ids.New(time.Now()))
			}
			var err error
			if last, err = js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-last.Ok():
		case err := <-last.Err():
			b.Fatal(err)
		}
		<-js.PublishAsyncComplete()
		return heapInUse() - before
	}
	for b.Loop() {
		without := publish(false)
		with := publish(true)
		b.ReportMetric(float64(int64(with)-int64(without))/n, "heap-bytes/msg-id")
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
