// Package framing checks the framing of HTTP/1 requests on a connection
// before net/http reads them, and refuses at the connection level the
// shapes of request smuggling that net/http alone would accept. Listen and
// ListenTLS wrap a listener; the server behind them sees only requests
// whose boundaries every HTTP/1.1 parser agrees on.
package framing
