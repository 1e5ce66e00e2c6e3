package stream

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transient reports whether err is one a component may outlive by trying
// again: JetStream without a leader for a moment (a node killed, an
// election under way), a server not answering yet, or a connection
// refused. A configuration or permission error is not: retrying it only
// hides it.
func Transient(err error) bool {
	var api *jetstream.APIError
	var netErr net.Error
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrNoHeartbeat),
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.As(err, &api):
		return api.Code == http.StatusServiceUnavailable
	case errors.As(err, &netErr):
		return true
	}
	return false
}
