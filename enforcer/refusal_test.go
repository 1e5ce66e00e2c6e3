package enforcer_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// TestConnectionRefusalsRecorded checks that requests refused by the
// framing check, before net/http read them, are recorded like any other
// refusal: a request event and a deny decision with the code, under the
// request id the client is answered with, in cleartext and over TLS.
func TestConnectionRefusalsRecorded(t *testing.T) {
	dialers := cleartextAndTLS(t)
	long := "/mcp/" + strings.Repeat("a", 400)
	tests := []struct {
		name       string
		raw        string
		code       enforcer.Code
		wantReq    event.Request
		wantReason []string
	}{
		{"CL and TE", "POST /mcp?x=1 HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer secret\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			enforcer.CodeRequestMalformed, event.Request{Method: "POST", Path: "/mcp", Query: "x=1"},
			[]string{"both Content-Length and Transfer-Encoding", "request 1 on the connection from 127.0.0.1:"}},
		{"headers too large", "POST " + long + " HTTP/1.1\r\nHost: tools.test\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\n\r\n",
			enforcer.CodeHeadersTooLarge, event.Request{Method: "POST", Path: long[:256], Truncated: []string{"method", "path"}},
			[]string{"header block over 32768 bytes"}},
	}
	for _, d := range dialers {
		for _, tt := range tests {
			t.Run(d.name+"/"+tt.name, func(t *testing.T) {
				c, err := d.dial(d.h.addr)
				if err != nil {
					t.Fatal(err)
				}
				resp, body := readRefusal(t, c, tt.raw)
				e, _ := body["error"].(map[string]any)
				id, _ := body["request_id"].(string)
				if resp.StatusCode != tt.code.Status() || e["code"] != string(tt.code) || id == "" {
					t.Fatalf("status %d body %v", resp.StatusCode, body)
				}
				got := d.h.events(t, id, event.KindRequest, event.KindDecision)
				req, dec := got[event.KindRequest], got[event.KindDecision]
				if !reflect.DeepEqual(*req.Request, tt.wantReq) || !reflect.DeepEqual(*dec.Request, tt.wantReq) {
					t.Errorf("request %+v, want %+v", *req.Request, tt.wantReq)
				}
				if dec.Tenant != "" || dec.Identity != nil {
					t.Errorf("tenant %q identity %+v: nothing was verified", dec.Tenant, dec.Identity)
				}
				dd := dec.Decision
				if dd.Effect != event.EffectDeny || dd.Code != string(tt.code) || dd.PolicyID != "e2e" {
					t.Errorf("decision %+v", dd)
				}
				for _, s := range tt.wantReason {
					if !strings.Contains(dd.Reason, s) {
						t.Errorf("reason %q, want %q in it", dd.Reason, s)
					}
				}
				if strings.Contains(dd.Reason, "secret") {
					t.Errorf("reason %q carries a header value", dd.Reason)
				}
			})
		}
	}
}

// TestConnectionRefusalWithoutAudit checks that a connection-level
// refusal is still answered, within the publish timeout, when it cannot
// be recorded: as the refusal, not as audit_unavailable.
func TestConnectionRefusalWithoutAudit(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond)
	h.nats.Shutdown()
	h.nats.WaitForShutdown()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, body := readRefusal(t, c, "POST /mcp HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if e, _ := body["error"].(map[string]any); resp.StatusCode != http.StatusBadRequest || e["code"] != string(enforcer.CodeRequestMalformed) {
		t.Fatalf("status %d body %v", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answered after %v", d)
	}
}

// readRefusal writes raw on c and reads the one answer, which must
// close the connection.
func readRefusal(t *testing.T, c net.Conn, raw string) (*http.Response, map[string]any) {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }() // the server may close mid-write
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	if _, err := br.ReadByte(); !resp.Close || !errors.Is(err, io.EOF) {
		t.Errorf("connection left open after the refusal (Connection: close %v, read %v)", resp.Close, err)
	}
	return resp, body
}
