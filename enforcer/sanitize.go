package enforcer

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopHeaders are connection-scoped (RFC 9110 §7.6.1) and never forwarded,
// along with any header the Connection header names. Upgrade goes too: an
// upgraded connection would carry bytes no decision has seen.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardedHeaders describe the path of a request through proxies; a
// client may not write them. X-Forwarded-For survives from trusted proxies.
var forwardedHeaders = []string{"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip"}

// sanitize removes from h what must not reach the backend: hop-by-hop
// headers, headers the client claims on the enforcer's or a proxy's
// behalf. trustedPeer keeps X-Forwarded-For for the proxy to extend.
func sanitize(h http.Header, trustedPeer bool) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	for _, k := range forwardedHeaders {
		h.Del(k)
	}
	for _, k := range overrideHeaders {
		h.Del(k)
	}
	for k := range h {
		switch {
		case strings.Contains(k, "_"):
			// CGI and WSGI servers read X_Rampart_Tenant as X-Rampart-Tenant:
			// every check here names the dashed spelling, so, as nginx does
			// by default, such names go.
			delete(h, k)
		case strings.HasPrefix(k, headerPrefix),
			strings.HasPrefix(k, "X-Original-"),
			strings.HasPrefix(k, "X-Forwarded-") && (k != "X-Forwarded-For" || !trustedPeer):
			delete(h, k)
		}
	}
}
