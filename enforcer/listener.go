package enforcer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
)

// malformedResponse is written, and the connection closed, when the framer
// refuses a request. It is not recorded as an event: no request was read.
var malformedResponse = func() []byte {
	body := errorBody(CodeRequestMalformed, "", "", nil)
	return append([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"), body...)
}()

// framingConn checks each HTTP/1 request's framing before net/http reads
// it; see framer.
type framingConn struct {
	net.Conn
	f       framer
	wmu     sync.Mutex // our 400 and the server's responses do not interleave
	refused bool
}

func (c *framingConn) Read(p []byte) (int, error) {
	if c.refused {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if ferr := c.f.feed(p[:n]); ferr != nil {
			// Nothing of this read reaches net/http: the request it belongs
			// to is refused here, and the connection with it.
			c.refused = true
			c.wmu.Lock()
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write(malformedResponse)
			c.wmu.Unlock()
			_ = c.Conn.Close()
			return 0, ferr
		}
	}
	return n, err
}

func (c *framingConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(p)
}

// tlsFramingConn is a checked TLS connection. ConnectionState lets
// net/http fill Request.TLS, which it does for *tls.Conn only otherwise.
type tlsFramingConn struct {
	framingConn
	tls *tls.Conn
}

func (c *tlsFramingConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// framingListener wraps each cleartext connection in a framingConn.
type framingListener struct {
	net.Listener
	limit int
}

func (l *framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c, f: framer{limit: l.limit}}, nil
}

// tlsListener terminates TLS itself so that HTTP/1 over TLS passes the
// framing check too: handshakes run off the accept loop (bounded by
// timeout), then an h2 connection goes to net/http as the *tls.Conn it
// needs for ALPN, and an HTTP/1 one wrapped in a framingConn.
type tlsListener struct {
	inner   net.Listener
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	err     error // why the accept loop ended; set before done closes
	timeout time.Duration
}

func newTLSListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, limit int) *tlsListener {
	l := &tlsListener{inner: inner, conns: make(chan net.Conn), done: make(chan struct{}), timeout: timeout}
	go l.loop(cfg, limit)
	return l
}

func (l *tlsListener) loop(cfg *tls.Config, limit int) {
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				continue
			}
			l.closeWith(err)
			return
		}
		go l.handshake(tls.Server(raw, cfg), limit)
	}
}

func (l *tlsListener) handshake(tc *tls.Conn, limit int) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
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
		c = &tlsFramingConn{framingConn: framingConn{Conn: tc, f: framer{limit: limit}}, tls: tc}
	}
	select {
	case l.conns <- c:
	case <-l.done:
		_ = tc.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
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

func (l *tlsListener) Close() error { return l.closeWith(nil) }

// closeWith closes l once; cause, from the first closer only, is what
// Accept reports afterwards (nil: net.ErrClosed).
func (l *tlsListener) closeWith(cause error) error {
	var err error
	l.once.Do(func() {
		l.err = cause
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }
