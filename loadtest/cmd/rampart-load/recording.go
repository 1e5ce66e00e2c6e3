package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// recordSize is the body of one recording: about what a call's request and
// decision events take, bundled in one message.
const recordSize = 1536

// recordingProxy is the bare proxy that first records each request in
// JetStream and waits for the acknowledgement, as the enforcer must before
// forwarding, and nothing else: no identity, no policy, no grouping. Its
// latency over the bare proxy's is what the record alone adds on this
// host, the floor under any enforcer that records before it forwards.
type recordingProxy struct {
	js    jetstream.JetStream
	next  http.Handler
	body  []byte
	count atomic.Uint64
}

func newRecordingProxy(ctx context.Context, natsURL string, next http.Handler) (*recordingProxy, func(), error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, nil, fmt.Errorf("recording proxy: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	// File storage and de-duplication by message id, as the events stream.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "LOAD_RECORDS", Subjects: []string{"load.records"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("recording proxy: %w", err)
	}
	body := make([]byte, recordSize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return &recordingProxy{js: js, next: next, body: body}, nc.Close, nil
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := nats.NewMsg("load.records")
	m.Data = p.body
	m.Header.Set(jetstream.MsgIDHeader, strconv.FormatUint(p.count.Add(1), 36))
	if _, err := p.js.PublishMsg(r.Context(), m); err != nil {
		http.Error(w, "not recorded: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	p.next.ServeHTTP(w, r)
}
