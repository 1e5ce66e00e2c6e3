package framing

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Code is the stable name of a refusal: the server behind the listener
// answers and records it under this name.
type Code string

// Malformed refuses a request with ambiguous framing (Content-Length with
// Transfer-Encoding, repeated Content-Length, folded headers, bare LF).
const Malformed Code = "request_malformed"

// Status is the HTTP status c is answered with.
func (c Code) Status() int { return http.StatusBadRequest }

// Refusal is a request refused by the check.
type Refusal struct {
	Code   Code
	Reason string   // what was wrong, for the record
	Remote net.Addr // the peer
}

// Options configure the check of a listener's connections.
type Options struct {
	// MaxHeaderBytes bounds a header block the check reads.
	MaxHeaderBytes int
	// HandshakeTimeout bounds a TLS handshake (ListenTLS only).
	HandshakeTimeout time.Duration
	// OnRefuse, when set, is called for every refused request before it is
	// answered, on the goroutine reading the connection, and returns the
	// answer's JSON body.
	OnRefuse func(Refusal) []byte
}

// Conn checks each HTTP/1 request's framing before net/http reads it; see
// framer.
type Conn struct {
	net.Conn
	f       framer
	o       *Options
	wmu     sync.Mutex // our refusal and the server's responses do not interleave
	refused bool
}

func newConn(c net.Conn, o *Options) *Conn {
	return &Conn{Conn: c, f: framer{limit: o.MaxHeaderBytes}, o: o}
}

func (c *Conn) Read(p []byte) (int, error) {
	if c.refused {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if ferr := c.f.feed(p[:n]); ferr != nil {
			// Nothing of this read reaches net/http: the request it belongs
			// to is refused here, and the connection with it.
			c.refused = true
			c.refuse(Refusal{Code: Malformed, Reason: ferr.Error(), Remote: c.RemoteAddr()})
			return 0, ferr
		}
	}
	return n, err
}

// refuse answers r and closes the connection.
func (c *Conn) refuse(r Refusal) {
	var body []byte
	if c.o.OnRefuse != nil {
		body = c.o.OnRefuse(r)
	}
	status := r.Code.Status()
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	c.wmu.Lock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write(append([]byte(head), body...))
	c.wmu.Unlock()
	_ = c.Conn.Close()
}

func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(p)
}

// tlsConn is a checked TLS connection. ConnectionState lets net/http fill
// Request.TLS, which it does for *tls.Conn only otherwise.
type tlsConn struct {
	*Conn
	tls *tls.Conn
}

func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// Listener wraps each cleartext connection in a Conn.
type Listener struct {
	net.Listener
	o Options
}

// Listen checks the connections accepted from inner.
func Listen(inner net.Listener, o Options) *Listener { return &Listener{Listener: inner, o: o} }

// Accept returns the next connection, checked.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(c, &l.o), nil
}

// TLSListener terminates TLS itself so that HTTP/1 over TLS passes the
// framing check too: handshakes run off the accept loop (bounded by
// HandshakeTimeout), then an h2 connection goes to net/http as the
// *tls.Conn it needs for ALPN, and an HTTP/1 one wrapped in a Conn.
type TLSListener struct {
	inner net.Listener
	o     Options
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // why the accept loop ended; set before done closes
}

// ListenTLS terminates TLS with cfg on the connections accepted from
// inner and checks those that speak HTTP/1.
func ListenTLS(inner net.Listener, cfg *tls.Config, o Options) *TLSListener {
	l := &TLSListener{inner: inner, o: o, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.loop(cfg)
	return l
}

func (l *TLSListener) loop(cfg *tls.Config) {
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				continue
			}
			l.closeWith(err)
			return
		}
		go l.handshake(tls.Server(raw, cfg))
	}
}

func (l *TLSListener) handshake(tc *tls.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), l.o.HandshakeTimeout)
	defer cancel()
	go func() { // a Close ends the wait for a stalled handshake early
		select {
		case <-l.done:
			_ = tc.Close()
		case <-ctx.Done():
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = tc.Close()
		return
	}
	var c net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		c = &tlsConn{Conn: newConn(tc, &l.o), tls: tc}
	}
	select {
	case l.conns <- c:
	case <-l.done:
		_ = tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *TLSListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the handshakes under way.
func (l *TLSListener) Close() error { return l.closeWith(nil) }

// closeWith closes l once; cause, from the first closer only, is what
// Accept reports afterwards (nil: net.ErrClosed).
func (l *TLSListener) closeWith(cause error) error {
	var err error
	l.once.Do(func() {
		l.err = cause
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the address of the listener inside.
func (l *TLSListener) Addr() net.Addr { return l.inner.Addr() }

var (
	_ net.Listener = (*Listener)(nil)
	_ net.Listener = (*TLSListener)(nil)
)
