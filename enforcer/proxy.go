package enforcer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rampart-io/rampart/enforcer/mcp"
	"github.com/rampart-io/rampart/schema/event"
	"golang.org/x/text/unicode/norm"
)

// reservedSegment is the first path segment of the enforcer's own
// endpoints (task API, broker, forward-auth, ext_authz).
const reservedSegment = "_rampart"

// reservedPath reports whether p lies in the enforcer's own namespace, in
// any letter case or compatibility form a backend might fold it to. Such a
// path that the enforcer does not serve itself is never allowed through:
// a rule written for the task API (path.startsWith("/_rampart/tasks"))
// must not open /_rampart/tasks-admin on a backend, and a gateway that
// sends /_rampart/tasks to the backend would leave the task undeclared.
func reservedPath(p string) bool {
	seg, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !utf8.ValidString(seg) {
		return false // refused as path_invalid
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] >= utf8.RuneSelf {
			seg = norm.NFKC.String(seg)
			break
		}
	}
	return strings.EqualFold(seg, reservedSegment)
}

// newProxy is proxy mode's reverse proxy to the one upstream: requests
// rewritten to it, answers read (and recorded) on their way back.
func (e *Enforcer) newProxy() *httputil.ReverseProxy {
	upstream, _ := url.Parse(e.cfg.Upstream) // checked by Validate
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep connections to the one backend warm under concurrency (the
	// default keeps 2 idle per host and churns the rest).
	transport.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: copyBuffers{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			// X-Forwarded-For from a trusted gateway is extended; from
			// anyone else it is dropped (forward did) and starts afresh.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		// A session the backend issues is bound to the caller before the
		// answer leaves, so nobody can present it first.
		ModifyResponse: func(resp *http.Response) error {
			if x, ok := resp.Request.Context().Value(exchangeKey{}).(*exchange); ok && !e.issueSession(x, resp) {
				return errSessionHeld
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errSessionHeld) {
				if rec, ok := w.(*recorder); ok {
					rec.withheld = true
				}
				e.log.Warn("answer withheld", "err", err, "request_id", r.Header.Get(HeaderRequestID))
				writeError(w, CodeSessionHeld, r.Header.Get(HeaderRequestID), "", nil)
				return
			}
			if rec, ok := w.(*recorder); ok {
				rec.unavailable = true
			}
			e.log.Warn("upstream failed", "err", err, "request_id", r.Header.Get(HeaderRequestID))
			writeError(w, CodeUpstreamUnavailable, r.Header.Get(HeaderRequestID), "", nil)
		},
	}
}

// exchangeKey carries a forwarded request's exchange to ModifyResponse.
type exchangeKey struct{}

// errSessionHeld is a backend issuing a session id another principal
// holds: its answer is not passed on.
var errSessionHeld = errors.New("the backend issued a session id another principal holds")

// errStreamRefused ends an SSE answer the enforcer cannot read as clients
// would (see sseReader.refused).
var errStreamRefused = errors.New("an SSE answer that cannot be read as clients read it")

// isEventStream reports whether h's Content-Type is an SSE stream, in any
// letter case or with parameters, as clients parse it.
func isEventStream(h http.Header) bool {
	const sse = "text/event-stream"
	ct := strings.TrimLeft(h.Get("Content-Type"), " \t")
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false // most answers: no parsing on every forwarded request
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == sse
}

// copyBuffers lends the reverse proxy its buffers for copying responses,
// which it would otherwise allocate (32 KiB) for every one.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte { return copyBufferPool.Get().(*[32 << 10]byte)[:] }
func (copyBuffers) Put(b []byte) {
	if len(b) == 32<<10 {
		copyBufferPool.Put((*[32 << 10]byte)(b))
	}
}

// serveProxy is the reverse-proxy mode: decide, then forward or answer.
// The host decided on and recorded is the upstream's, where the request is
// sent with that Host: the client's Host names nothing here, and letting
// it pick the destination would let a client choose its data class.
func (e *Enforcer) serveProxy(w http.ResponseWriter, r *http.Request) {
	c := &check{method: r.Method, host: e.upstreamHost, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header, body: r.Body}
	c.peerSPIFFE, c.certErr = peerSPIFFEID(r.TLS)
	o := e.decide(r.Context(), c)
	w.Header().Set(HeaderRequestID, o.id)
	if !o.allow {
		o.code.setHeader(w.Header())
		writeReply(w, o.status, o.reply)
		return
	}
	e.forward(w, r, o)
}

// forward sends an allowed request to the upstream and records its answer.
func (e *Enforcer) forward(w http.ResponseWriter, r *http.Request, o *outcome) {
	sanitize(r.Header, inPrefixes(e.forwarders, remoteAddr(r)))
	if o.credential != "" {
		replaceCredentials(r.Header, e.cfg.Credentials.StripHeaders, o.credential)
	}
	for k, v := range o.upstreamHeader() {
		r.Header[k] = v
	}
	propagate(o.span, r.Header)
	r.Body = io.NopCloser(bytes.NewReader(o.body))
	r.ContentLength = int64(len(o.body))
	r.TransferEncoding = nil
	r.Trailer = nil // a chunked body's trailers: headers no check saw, which HTTP/2 would send on

	rec := &recorder{ResponseWriter: w, status: http.StatusOK, onServerMessage: func(data []byte) string { return e.serverMessage(o.x, data) }}
	if o.x.request.RPCMethod == mcp.MethodToolsList {
		rec.keep = maxObservedListing // the listing's schemas are pinned below
	}
	start := time.Now()
	x := o.x
	// The reverse proxy aborts the handler (panics with
	// http.ErrAbortHandler) when a streamed answer breaks off, on either
	// side: the response event is queued on the way out all the same, so
	// every forwarded call's record says how it ended.
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			panic(p)
		}
		if r.Method == http.MethodDelete && rec.status/100 == 2 && p == nil {
			e.releaseSession(x, r.Header) // the MCP session is over
		}
		if rec.keep > 0 && p == nil {
			e.observeListing(x, rec)
		}
		e.queueResponse(&event.Event{
			Kind: event.KindResponse, Tenant: x.tenant(), RequestID: x.id, Trace: x.trace, Identity: x.identity(),
			Request: x.request, Response: &event.Response{Status: rec.status, DurationNs: time.Since(start).Nanoseconds(),
				Bytes: rec.bytes, Outcome: rec.outcome(p != nil, r.Context().Err() != nil)},
		})
		if p != nil {
			panic(p) // net/http ends the connection, as the proxy meant
		}
	}()
	e.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
}
