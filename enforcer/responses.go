package enforcer

import (
	"context"
	"errors"

	"github.com/rampart-io/rampart/enforcer/audit"
	"github.com/rampart-io/rampart/schema/event"
)

// queueResponse hands a response event to the recorder. The answer must
// not wait for its own record: the event is queued (bounded; when full,
// this request waits: backpressure, never a drop) and recorded in order by
// one goroutine. A handler still running while the enforcer closes
// records its own.
func (e *Enforcer) queueResponse(resp *event.Event) {
	select {
	case <-e.closing:
		e.recordResponse(resp)
	case e.responses <- resp:
	}
}

// responseQueue bounds response events waiting to be recorded.
const responseQueue = 4096

// responseBatch bounds the response events recorded in one round trip.
const responseBatch = 256

// recordResponses records queued response events until Close, then what
// is still queued. It takes whatever has queued up while the previous
// events were being acknowledged, up to responseBatch, and records them
// together: one event per JetStream round trip would cap the enforcer's
// throughput at the inverse of the ack latency, every handler waiting on
// the full queue.
func (e *Enforcer) recordResponses() {
	defer close(e.responded)
	batch := make([]*event.Event, 0, responseBatch)
	for {
		select {
		case resp := <-e.responses:
			batch = append(batch[:0], resp)
		fill:
			for len(batch) < responseBatch {
				select {
				case resp := <-e.responses:
					batch = append(batch, resp)
				default:
					break fill
				}
			}
			e.recordResponse(batch...)
		case <-e.closing:
			for {
				select {
				case resp := <-e.responses:
					e.recordResponse(resp)
				default:
					return
				}
			}
		}
	}
}

// recordResponse records response events in one call, in order.
func (e *Enforcer) recordResponse(resps ...*event.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*e.cfg.NATS.PublishTimeout)
	defer cancel()
	err := e.audit.PublishBatch(ctx, resps...)
	if err != nil && len(resps) > 1 && !errors.Is(err, audit.ErrUnavailable) {
		// One event the publisher refused must not cost the others theirs.
		for _, resp := range resps {
			e.recordResponse(resp)
		}
		return
	}
	if err != nil {
		for _, resp := range resps {
			e.log.Warn("response event not recorded", "request_id", resp.RequestID, "err", err)
		}
	}
}
