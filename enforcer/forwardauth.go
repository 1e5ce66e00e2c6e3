package enforcer

import (
	"errors"
	"net/http"
	"net/url"
)

// serveForwardAuth answers a gateway's auth subrequest (nginx
// auth_request, Caddy forward_auth, Traefik forwardAuth). The original
// method, URI and host come in headers, believed only from trusted proxies.
// 2xx allows, with X-Rampart-* headers for the gateway to copy upstream;
// any other status refuses, with the JSON answer for the client.
//
// nginx's auth_request never passes the request body, so MCP tool names
// and arguments are invisible in this mode and policy decides on identity,
// method, host and path only. A gateway that does pass the body (Traefik
// forwardBody) gets it decided in full.
func (e *Enforcer) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	c := &check{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.EscapedPath(), header: r.Header}
	var missing error
	if !e.trusted(remoteAddr(r)) {
		c.untrusted = true
	} else {
		method := firstHeader(r.Header, e.cfg.ForwardAuth.MethodHeaders)
		uri := firstHeader(r.Header, e.cfg.ForwardAuth.URIHeaders)
		host := firstHeader(r.Header, e.cfg.ForwardAuth.HostHeaders)
		u, err := url.ParseRequestURI(uri)
		switch {
		case method == "" || uri == "" || host == "":
			missing = errors.New("forwarded method, URI or host header missing")
		case err != nil:
			missing = err
		default:
			c.method, c.host, c.path, c.rawPath, c.query = method, host, u.Path, u.EscapedPath(), u.RawQuery
		}
		if r.ContentLength != 0 && r.Body != http.NoBody {
			c.body = r.Body
		}
		c.peerSPIFFE, c.certErr = peerSPIFFEID(r.TLS)
	}
	var o *outcome
	if missing != nil {
		x := e.newExchange(c)
		o = e.refuse(r.Context(), x, CodeForwardedMissing, missing, nil)
	} else {
		o = e.decide(r.Context(), c)
	}
	w.Header().Set(HeaderRequestID, o.id)
	if !o.allow {
		o.code.setHeader(w.Header())
		writeReply(w, o.status, o.reply)
		return
	}
	for k, v := range o.upstreamHeader() {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusOK)
}

func firstHeader(h http.Header, names []string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
