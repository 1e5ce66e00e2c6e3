package enforcer_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// TestEveryForwardedRequestHasAResponseEvent: however a forwarded call
// ends — the client gone in the middle of a streamed answer, the backend
// cut off mid-answer or unreachable — its response event is recorded and
// says how it ended. A client abandoning an SSE stream used to abort the
// handler before the response event was queued, leaving no record of how
// the call ended.
func TestEveryForwardedRequestHasAResponseEvent(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		b := h.backend(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.Header.Get("X-Case") {
			case "stream": // SSE that never ends on its own
				w.Header().Set("Content-Type", "text/event-stream")
				for i := 0; r.Context().Err() == nil && i < 500; i++ {
					fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":%d}}\n\n", i)
					w.(http.Flusher).Flush()
					time.Sleep(10 * time.Millisecond)
				}
			case "cut": // starts a stream, then drops the connection
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"))
				w.(http.Flusher).Flush()
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			default:
				_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
			}
		})
		c.Upstream = b.URL
	})
	tok := h.token(t)
	send := func(t *testing.T, xcase string) (string, *bufio.Reader, net.Conn) {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		body := toolCall("search", `{}`)
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer %s\r\nX-Case: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
			tok, xcase, len(body), body)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get(enforcer.HeaderRequestID), br, c
	}
	t.Run("client gone mid-stream", func(t *testing.T) {
		id, br, c := send(t, "stream")
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		c.Close() // the agent gives up on the stream
		r := h.events(t, id, event.KindResponse)[event.KindResponse]
		if r.Response.Outcome != "client_gone" || r.Response.Status != http.StatusOK || r.Response.Bytes == 0 {
			t.Errorf("response %+v", r.Response)
		}
	})
	t.Run("backend cut off", func(t *testing.T) {
		id, br, c := send(t, "cut")
		defer c.Close()
		_, _ = br.ReadString('\n') // whatever arrives before the cut
		r := h.events(t, id, event.KindResponse)[event.KindResponse]
		if r.Response.Outcome != "upstream_aborted" {
			t.Errorf("response %+v", r.Response)
		}
	})
	t.Run("completed", func(t *testing.T) {
		id, _, c := send(t, "")
		c.Close()
		r := h.events(t, id, event.KindResponse)[event.KindResponse]
		if r.Response.Outcome != "completed" || r.Response.Status != http.StatusOK {
			t.Errorf("response %+v", r.Response)
		}
	})
}

// TestUpstreamUnreachableHasAResponseEvent: a backend that cannot be
// reached answers 502, recorded as such.
func TestUpstreamUnreachableHasAResponseEvent(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Upstream = "http://" + ln.Addr().String()
		ln.Close() // nothing listens there now
	})
	r := h.post(t, toolCall("search", `{}`), http.Header{"Authorization": {"Bearer " + h.token(t)}})
	if r.status != http.StatusBadGateway {
		t.Fatalf("status %d %v", r.status, r.body)
	}
	resp := h.events(t, r.requestID, event.KindResponse)[event.KindResponse]
	if resp.Response.Outcome != "upstream_unavailable" || resp.Response.Status != http.StatusBadGateway {
		t.Errorf("response %+v", resp.Response)
	}
}
