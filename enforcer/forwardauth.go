package enforcer

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Gateways whose forward-auth subrequests the enforcer reads. Each sets the
// original request's method, URI and host in headers of its own, and
// passes every other header of the client's through to the subrequest: so
// the enforcer reads exactly the three its gateway overwrites, and refuses
// a subrequest that carries any other spelling of them, since that can only
// have come from the client.
const (
	// GatewayNginx: auth_request with proxy_set_header X-Original-Method,
	// X-Original-URI and X-Original-Host (README).
	GatewayNginx = "nginx"
	// GatewayCaddy: forward_auth, which sets X-Forwarded-Method,
	// X-Forwarded-Uri and X-Forwarded-Host itself.
	GatewayCaddy = "caddy"
	// GatewayTraefik: forwardAuth, which sets the same headers as Caddy.
	GatewayTraefik = "traefik"
)

// HeaderGatewaySecret is how a gateway proves to the forward-auth endpoint
// that a subrequest is its own: any process that can reach the endpoint
// could otherwise record decisions for requests that never happened.
const HeaderGatewaySecret = "X-Rampart-Gateway-Secret"

// originHeaders name the headers carrying the original request.
type originHeaders struct{ method, uri, host string }

var gatewayHeaders = map[string]originHeaders{
	GatewayNginx:   {"X-Original-Method", "X-Original-Uri", "X-Original-Host"},
	GatewayCaddy:   {"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"},
	GatewayTraefik: {"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"},
}

// originLike are the headers, lower case with "-" for "_", that name an
// original or overriding request line to some gateway or backend framework.
// Only the configured gateway's own may appear in a subrequest. The
// X-Forwarded-Host of a CDN ahead of nginx is not among them: nginx reads
// X-Original-Host.
var originLike = map[string]bool{
	"x-original-method": true, "x-original-uri": true, "x-original-url": true, "x-original-host": true,
	"x-forwarded-method": true, "x-forwarded-uri": true, "x-forwarded-url": true, "x-forwarded-path": true,
	"x-forwarded-prefix": true, "x-rewrite-url": true,
	"x-http-method-override": true, "x-http-method": true, "x-method-override": true,
}

// overrideHeaders make some backend frameworks run another method or path
// than the request line's: proxy mode strips them, forward-auth (which
// cannot strip) refuses them.
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url"}

// serveForwardAuth answers a gateway's auth subrequest (nginx
// auth_request, Caddy forward_auth, Traefik forwardAuth). The original
// method, URI and host come in the configured gateway's headers, believed
// only from trusted proxies that present the gateway secret.
// 2xx allows, with X-Rampart-* headers for the gateway to copy upstream;
// any other status refuses, with the JSON answer for the client.
//
// nginx's auth_request never passes the request body, so MCP tool names
// and arguments are invisible in this mode and policy decides on identity,
// method, host and path only. A gateway that does pass the body (Traefik
// forwardBody) gets it decided in full.
func (e *Enforcer) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	c := &check{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.EscapedPath(), header: r.Header}
	var o *outcome
	switch {
	case !e.trusted(remoteAddr(r)):
		c.untrusted = true
		o = e.decide(r.Context(), c)
	case !e.gatewaySecretOK(r.Header):
		x := e.newExchange(c)
		o = e.refuse(r.Context(), x, CodeGatewayUnauthenticated,
			fmt.Errorf("subrequest without the gateway secret (%s)", HeaderGatewaySecret), nil)
		e.metrics.observe(r.Context(), false, o.code, x.start)
	default:
		code, err := e.readOrigin(c, r.Header)
		if err != nil {
			c.refusal, c.refusalCode = err, code
		}
		if r.ContentLength != 0 && r.Body != http.NoBody {
			c.body = r.Body
		}
		c.peerSPIFFE, c.certErr = peerSPIFFEID(r.TLS)
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

// readOrigin sets c's method, host and path from the gateway's headers.
// Every header that could name the original request in another spelling
// — other letter case merged by net/http into one repeated field, "_" for
// "-", another gateway's, a framework's override — is a refusal, as is a
// client's own X-Rampart-* header, which the gateway would pass to the
// backend.
func (e *Enforcer) readOrigin(c *check, h http.Header) (Code, error) {
	want := gatewayHeaders[e.cfg.ForwardAuth.Gateway]
	for k, v := range h {
		norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		switch {
		case k == want.method || k == want.uri || k == want.host:
			if len(v) != 1 {
				return CodeForwardedConflict, fmt.Errorf("%d %s fields", len(v), k)
			}
		case originLike[norm]:
			return CodeForwardedConflict, fmt.Errorf("%s is not a header %s sets for the original request", k, e.cfg.ForwardAuth.Gateway)
		case strings.HasPrefix(norm, "x-rampart-") && k != HeaderGatewaySecret:
			return CodeHeaderForbidden, fmt.Errorf("client header %s: X-Rampart-* headers are the enforcer's", k)
		case strings.Contains(k, "_"):
			// A CGI backend reads it as the dashed name, which no check here saw.
			return CodeHeaderForbidden, fmt.Errorf("client header %s: a name with _ reads as another header to CGI backends", k)
		}
	}
	method, uri, host := h.Get(want.method), h.Get(want.uri), h.Get(want.host)
	if method == "" || uri == "" || host == "" {
		return CodeForwardedMissing, fmt.Errorf("%s, %s or %s missing", want.method, want.uri, want.host)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return CodeForwardedMissing, err
	}
	c.method, c.host, c.path, c.rawPath, c.query = method, host, u.Path, u.EscapedPath(), u.RawQuery
	return "", nil
}

// gatewaySecretOK reports whether h carries the gateway secret, once.
func (e *Enforcer) gatewaySecretOK(h http.Header) bool {
	return secretMatches(h.Values(HeaderGatewaySecret), e.gatewaySecret)
}

// secretMatches reports whether values is one value whose SHA-256 is want,
// compared in constant time.
func secretMatches(values []string, want [sha256.Size]byte) bool {
	if len(values) != 1 {
		return false
	}
	got := sha256.Sum256([]byte(values[0]))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// minGatewaySecret is the shortest secret accepted: a guessable one would
// let any local process record decisions.
const minGatewaySecret = 16

// loadGatewaySecret reads the secret file of setting (for errors): one
// line, surrounding whitespace ignored.
func loadGatewaySecret(setting, path string) ([sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("enforcer: %s: %w", setting, err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minGatewaySecret || strings.ContainsAny(s, "\r\n") {
		return [sha256.Size]byte{}, fmt.Errorf("enforcer: %s must hold one line of at least 16 characters", setting)
	}
	return sha256.Sum256([]byte(s)), nil
}
