package enforcer

import (
	"net/http"

	"github.com/rampart-io/rampart/schema/event"
)

// maxObservedListing bounds the tools/list answer kept to pin its schemas.
const maxObservedListing = 4 << 20

// recorder notes the status and size of a response as it passes, and
// keeps up to keep bytes of its body.
type recorder struct {
	http.ResponseWriter
	status        int
	bytes         int64
	written       bool
	keep          int
	kept          []byte
	writeErr      error // the first failed write to the client
	unavailable   bool  // the upstream gave no answer (the proxy's ErrorHandler ran)
	withheld      bool  // the upstream's answer was not passed on (errSessionHeld)
	streamRefused bool  // an SSE answer was cut off where it could not be read
	// onServerMessage, when set, sees each message of an SSE answer before
	// the client does.
	onServerMessage func(data []byte) (refuse string)
	sse             *sseReader
}

// outcome is how the exchange ended, once the proxy returned or aborted;
// clientDone is the client's request context having ended.
func (r *recorder) outcome(aborted, clientDone bool) string {
	switch {
	case r.withheld:
		return event.OutcomeAnswerWithheld
	case r.streamRefused:
		return event.OutcomeStreamRefused
	case r.unavailable:
		return event.OutcomeUpstreamUnavailable
	case r.writeErr != nil || aborted && clientDone:
		return event.OutcomeClientGone
	case aborted:
		return event.OutcomeUpstreamAborted
	}
	return event.OutcomeCompleted
}

func (r *recorder) WriteHeader(status int) {
	if !r.written && status >= 200 { // 1xx (103 Early Hints) precede the real status
		r.status, r.written = status, true
		if r.onServerMessage != nil && status/100 == 2 && isEventStream(r.Header()) {
			r.sse = &sseReader{onEvent: r.onServerMessage, limit: maxServerMessage}
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.written {
		r.WriteHeader(http.StatusOK)
	}
	if r.sse != nil {
		r.sse.feed(b) // before the client can answer what it carries
		if r.sse.refused != "" {
			// What the client would read here is not what was read: the
			// stream ends rather than pass on unread.
			r.streamRefused = true
			return 0, errStreamRefused
		}
	}
	if r.keep > 0 && len(r.kept)+len(b) <= r.keep {
		r.kept = append(r.kept, b...)
	} else {
		r.keep, r.kept = 0, nil // too large to pin from
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if err != nil && r.writeErr == nil {
		r.writeErr = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach Flush on the real writer, which
// streamed (SSE) MCP responses need.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
