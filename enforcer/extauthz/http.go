package extauthz

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
)

// headerRemove is how an HTTP authorization service tells Envoy which
// request headers to strip before forwarding.
const headerRemove = "X-Envoy-Auth-Headers-To-Remove"

// HTTPHandler serves Envoy's ext_authz HTTP service: Envoy sends the
// original method, Host and headers, and the path behind path_prefix
// (prefix here); the body only with with_request_body. maxBody bounds the
// body read. A 200 answer with headers lets Envoy forward (configure
// allowed_upstream_headers to copy X-Rampart-*); any other is sent to the
// client (allowed_client_headers).
func HTTPHandler(c Checker, prefix string, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.RequestURI(), prefix)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		req := &Request{Method: r.Method, Host: r.Host, Path: path, Header: r.Header.Clone(), BodySeen: true}
		req.GatewaySecret = req.Header.Values(SecretHeader)
		req.Header.Del(SecretHeader) // the gateway's, not the client request's
		// The body is read here rather than by the Checker so that the
		// HTTP and gRPC variants hand the same Request over.
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		switch {
		case err != nil:
			req.BodySeen = false
		case int64(len(b)) > maxBody:
			req.Body, req.BodyTruncated = b[:maxBody], true
		default:
			req.Body = b
		}
		if strings.EqualFold(r.Header.Get(HeaderPartialBody), "true") {
			req.BodyTruncated = true
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			req.Peer = ap.Addr().Unmap()
		}
		v := c.Check(r.Context(), req)
		for k, vs := range v.Header {
			w.Header()[k] = vs
		}
		if v.Allow {
			if len(v.Remove) > 0 {
				w.Header().Set(headerRemove, strings.Join(v.Remove, ","))
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(v.Status)
		_, _ = w.Write(v.Body)
	})
}
