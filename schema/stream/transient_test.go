package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("bucket X: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("ensure stream: %w", jetstream.ErrNoStreamResponse), true},
		{nats.ErrNoResponders, true},
		{fmt.Errorf("recovery: read stream: %w", jetstream.ErrNoHeartbeat), true},
		{nats.ErrTimeout, true},
		{fmt.Errorf("clickhouse: %w", refused), true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{errors.New("batch_size 0 out of range [1, 100000]"), false},
		{nats.ErrAuthorization, false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
