package framing_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/framing"
)

// TestListenRefuses serves an http.Server behind Listen and checks that a
// refused request is answered by the check with OnRefuse's body, never
// reaches the handler, and closes the connection, while the request
// before it on the connection was served.
func TestListenRefuses(t *testing.T) {
	const limit = 1 << 10
	refusals := make(chan framing.Refusal, 8)
	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:        http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }),
		MaxHeaderBytes: limit,
	}
	onRefuse := func(r framing.Refusal) []byte {
		select {
		case refusals <- r:
		default:
		}
		return []byte(`{"error":{"code":"` + string(r.Code) + `"}}`)
	}
	go func() { _ = srv.Serve(framing.Listen(ln, framing.Options{MaxHeaderBytes: limit, OnRefuse: onRefuse})) }()
	t.Cleanup(func() { _ = srv.Close() })

	tests := []struct {
		name string
		raw  string
		code framing.Code
	}{
		{"CL and TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", framing.Malformed},
		{"header block too large", "GET /big HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("b", limit) + "\r\n\r\n", framing.HeadersTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if _, err := io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("first request: %v %v", resp, err)
			}
			go func() { _, _ = io.WriteString(c, tt.raw) }() // the server may close mid-write
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code.Status() || !resp.Close || resp.Header.Get("Content-Type") != "application/json" ||
				string(body) != `{"error":{"code":"`+string(tt.code)+`"}}` {
				t.Errorf("answer %d %v %s", resp.StatusCode, resp.Header, body)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Errorf("read after the refusal: %v", err)
			}
			if hits.Load() != 1 {
				t.Errorf("handler hit %d times", hits.Load())
			}
			select {
			case r := <-refusals:
				if r.Code != tt.code || r.Request != 2 || r.Remote.String() != c.LocalAddr().String() {
					t.Errorf("refusal %+v", r)
				}
			default:
				t.Error("OnRefuse not called")
			}
		})
	}
}
