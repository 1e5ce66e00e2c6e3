package enforcer_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
)

// TestUnderscoreHeadersNeverReachTheBackend: CGI and WSGI servers read
// "X_Rampart_Tenant" as X-Rampart-Tenant and "Mcp_Session_Id" as the
// session header; Go keeps them apart, so they passed every check that
// names the dashed spelling. Like nginx by default, proxy mode drops them.
func TestUnderscoreHeadersNeverReachTheBackend(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	resp, b, _ := h.rawRequest(t, post("/mcp", h.token(t),
		"Mcp_Session_Id: bob-session-42\r\n", "X_Rampart_Tenant: globex\r\n", "X_Forwarded_For: 6.6.6.6\r\n",
		"X_Http_Method_Override: DELETE\r\n", "X_Original_Url: /admin\r\n", "Agent_Task_Id: t\r\n", "X_Kept: no\r\n", "X-Kept: yes\r\n"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, b)
	}
	for k := range h.lastUpstream() {
		if strings.Contains(k, "_") {
			t.Errorf("%s reached the backend", k)
		}
	}
	if h.lastUpstream().Get("X-Kept") != "yes" {
		t.Errorf("headers %v", h.lastUpstream())
	}
}

// outbound records what the proxy's transport is asked to send.
type outbound struct {
	mu      sync.Mutex
	header  http.Header
	trailer http.Header
}

func (o *outbound) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	o.mu.Lock()
	o.header, o.trailer = r.Header.Clone(), r.Trailer.Clone()
	o.mu.Unlock()
	body := `{"jsonrpc":"2.0","id":1,"result":{}}`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// TestRequestTrailersNeverReachTheBackend: a chunked request's trailers
// ride along in Request.Trailer, which an HTTP/2 transport sends on: the
// backend would get X-Rampart-* and session headers no check saw.
func TestRequestTrailersNeverReachTheBackend(t *testing.T) {
	out := &outbound{}
	h := newHarness(t, 2*time.Second, func(h *harness, c *enforcer.Config) {
		h.onServe = func(e *enforcer.Enforcer) { enforcer.SetUpstreamTransport(e, out) }
	})
	body := toolCall("search", `{}`)
	raw := "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + h.token(t) + "\r\n" +
		"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Rampart-Tenant, Mcp-Session-Id\r\n\r\n" +
		strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\nX-Rampart-Tenant: globex\r\nMcp-Session-Id: bob-session-42\r\n\r\n"
	resp, b, _ := h.rawRequest(t, raw)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, b)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.trailer) != 0 || out.header.Get("Trailer") != "" {
		t.Errorf("trailers sent upstream: %v (Trailer: %q)", out.trailer, out.header.Get("Trailer"))
	}
}
