package enforcer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-io/rampart/enforcer/framing"
)

// refused records a request that the framing check refused at the
// connection level, and returns the body of its answer. net/http never
// read the request, so no identity was verified (the tenant is empty) and
// nothing of its headers is kept: the request event carries the method
// and the target as sent, bounded by the check (Truncated names them when
// cut), and the decision event the code and why, with the peer.
//
// The connection waits for the record at most the publish timeout. The
// answer is the refusal even when the record fails (refuse logs it): a
// 503 audit_unavailable would invite the client to send it again.
func (e *Enforcer) refused(r framing.Refusal) []byte {
	path, query, _ := strings.Cut(r.Target, "?")
	x := e.newExchange(&check{method: r.Method, path: path, query: query})
	code := Code(r.Code)
	cause := fmt.Sprintf("%s (request %d on the connection from %s)", r.Reason, r.Request, r.Remote)
	if r.Truncated {
		// Cut at framing.MaxRecorded bytes, or where the request line stopped.
		x.request.Truncated = append(x.request.Truncated, "method", "path")
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.NATS.PublishTimeout)
	defer cancel()
	o := e.refuse(ctx, x, code, errors.New(cause), nil)
	e.metrics.observe(ctx, false, o.code, x.start)
	if o.code == code {
		return o.reply
	}
	return errorBody(code, x.id, "", nil)
}
