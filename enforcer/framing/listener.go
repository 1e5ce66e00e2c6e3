package framing

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configure the check of a listener's connections.
type Options struct {
	// MaxHeaderBytes bounds a request's header block, request line to
	// blank line; a longer one is refused with HeadersTooLarge. Set it to
	// the server's http.Server.MaxHeaderBytes: net/http allows 4 KiB more
	// (and answers past that in plain text), so the check answers first.
	// Zero means http.DefaultMaxHeaderBytes, as for the server.
	MaxHeaderBytes int
	// HandshakeTimeout bounds a TLS handshake (ListenTLS only). Zero
	// means 10 seconds.
	HandshakeTimeout time.Duration
	// OnRefuse, when set, is called for every refused request before it is
	// answered, on the goroutine reading the connection (which waits for
	// it), and returns the answer's JSON body; without it the body is
	// empty.
	OnRefuse func(Refusal) []byte
}

// conn checks each HTTP/1 request's framing before net/http reads it; see
// framer. A refused request is answered here, and the connection closed.
type conn struct {
	net.Conn
	f       framer
	o       *Options
	wmu     sync.Mutex // our refusal and the server's responses do not interleave
	refused bool
}

func newConn(c net.Conn, o *Options) *conn {
	return &conn{Conn: c, f: framer{limit: o.MaxHeaderBytes}, o: o}
}

func (c *conn) Read(p []byte) (int, error) {
	if c.refused {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if r := c.f.feed(p[:n]); r != nil {
			// Nothing of this read reaches net/http: the request it belongs
			// to is refused here, and the connection with it.
			c.refused = true
			r.Remote = c.RemoteAddr()
			c.refuse(*r)
			// A read error, so that net/http closes quietly rather than
			// answer on the closed connection.
			return 0, &net.OpError{Op: "read", Net: r.Remote.Network(), Source: c.LocalAddr(), Addr: r.Remote, Err: r}
		}
	}
	return n, err
}

// lingerTime and lingerBytes bound the wait, after a refusal, for the
// client to read it: closing with its request still unread would reset
// the connection, and the client could lose the answer.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 1 << 20
)

// refuse answers r and closes the connection.
func (c *conn) refuse(r Refusal) {
	var body []byte
	if c.o.OnRefuse != nil {
		body = c.o.OnRefuse(r)
	}
	status := r.Code.Status()
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n"
	if len(body) > 0 {
		head += "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
	}
	head += "Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	c.wmu.Lock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := c.Conn.Write(append([]byte(head), body...))
	c.wmu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && err == nil && cw.CloseWrite() == nil {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
	}
	_ = c.Conn.Close()
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(p)
}

// tlsConn is a checked TLS connection. ConnectionState lets net/http fill
// Request.TLS, which it does for *tls.Conn only otherwise.
type tlsConn struct {
	*conn
	tls *tls.Conn
}

func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// Listener checks the cleartext connections of the listener inside.
type Listener struct {
	net.Listener
	o Options
}

// Listen checks the connections accepted from inner.
func Listen(inner net.Listener, o Options) *Listener {
	return &Listener{Listener: inner, o: o.withDefaults()}
}

func (o Options) withDefaults() Options {
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	return o
}

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
// *tls.Conn it needs for ALPN, and an HTTP/1 one checked.
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
	l := &TLSListener{inner: inner, o: o.withDefaults(), conns: make(chan net.Conn), done: make(chan struct{})}
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
		c = &tlsConn{conn: newConn(tc, &l.o), tls: tc}
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
