package enforcer_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// rawRequest writes raw to the enforcer over plain TCP and reads one
// response; when the response announces Connection: close, it reports
// whether the server did close the connection.
func (h *harness) rawRequest(t *testing.T, raw string) (resp *http.Response, body map[string]any, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = json.Unmarshal(b, &body)
	if !resp.Close {
		return resp, body, false // a keep-alive answer: the server waits for more
	}
	_, err = br.ReadByte()
	return resp, body, errors.Is(err, io.EOF)
}

func post(path, token string, extra ...string) string {
	return postHost(path, "tools.test", token, extra...)
}

// postHost is post with another Host.
func postHost(path, host, token string, extra ...string) string {
	b := toolCall("search", `{"q":"x"}`)
	return "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + token + "\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n" +
		strings.Join(extra, "") + "\r\n" + b
}

func TestSmugglingRefusedOnTheWire(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	tok := h.token(t)
	body := toolCall("search", `{}`)
	head := "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + tok + "\r\n"
	chunked := strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
	tests := []struct {
		name       string
		raw        string
		wantStatus int
	}{
		{"control: well framed", post("/mcp", tok), http.StatusOK},
		{"control: chunked", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked, http.StatusOK},
		{"CL and TE", head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, http.StatusBadRequest},
		{"TE and CL", head + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked, http.StatusBadRequest},
		{"conflicting CL", head + "Content-Length: 4\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, http.StatusBadRequest},
		{"duplicate equal CL", head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, http.StatusBadRequest},
		{"obfuscated TE", head + "Transfer-Encoding: xchunked\r\n\r\n" + chunked, http.StatusBadRequest},
		{"space before colon", head + "Transfer-Encoding : chunked\r\n\r\n" + chunked, http.StatusBadRequest},
		// Sent in one write, both arrive in one read, refused whole.
		{"smuggled behind a good request", post("/mcp", tok) + head + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hits.Load()
			resp, b, closed := h.rawRequest(t, tt.raw)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantStatus == http.StatusBadRequest {
				if e, _ := b["error"].(map[string]any); e["code"] != string(enforcer.CodeRequestMalformed) {
					t.Errorf("body = %v", b)
				}
				if !closed {
					t.Error("connection left open after a refused request")
				}
				if h.hits.Load() != before {
					t.Error("refused request reached the backend")
				}
			}
		})
	}
	// However the pipeline is split into reads, the smuggled request is
	// never answered nor forwarded.
	t.Run("pipeline stops at the smuggled request", func(t *testing.T) {
		before := h.hits.Load()
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, post("/mcp", tok)+head+"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked)
		all, _ := io.ReadAll(c)
		if got := strings.Count(string(all), "HTTP/1.1 200"); got > 1 {
			t.Fatalf("%d requests answered 200:\n%s", got, all)
		}
		if h.hits.Load()-before > 1 {
			t.Fatalf("backend hit %d times", h.hits.Load()-before)
		}
	})
}

func TestConnectionLimits(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(_ *harness, c *enforcer.Config) { c.MaxHeaderBytes = 4 << 10 })
	t.Run("headers over max_header_bytes get 431", func(t *testing.T) {
		resp, _, _ := h.rawRequest(t, post("/mcp", h.token(t), "X-Big: "+strings.Repeat("a", 16<<10)+"\r\n"))
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	// Each client below trickles or stalls. Only the timeout under test is
	// short, every other one is 30 s, so a close after that timeout and
	// before the client would have been done (or before 10 s, for the idle
	// client) is that timeout's doing: no bound depends on how fast the
	// machine is.
	const tick = 20 * time.Millisecond // the attacker's pace
	long := 30 * time.Second
	tests := []struct {
		name     string
		timeouts enforcer.Timeouts
		first    string        // sent at once
		drip     string        // then one byte per tick
		limit    time.Duration // the timeout that should cut it off
	}{
		{"slowloris headers", enforcer.Timeouts{ReadHeader: 300 * time.Millisecond, Read: long, Write: long, Idle: long},
			"POST /mcp HTTP/1.1\r\n", "Host: tools.test\r\nX-Slow: " + strings.Repeat("a", 200), 300 * time.Millisecond},
		{"slow body", enforcer.Timeouts{ReadHeader: long, Read: 600 * time.Millisecond, Write: long, Idle: long},
			"POST /mcp HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n", strings.Repeat("b", 500), 600 * time.Millisecond},
		{"idle keep-alive", enforcer.Timeouts{ReadHeader: long, Read: long, Write: long, Idle: 400 * time.Millisecond},
			"GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", "", 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 2*time.Second, func(_ *harness, c *enforcer.Config) { c.Timeouts = tt.timeouts })
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if _, err := io.WriteString(c, tt.first); err != nil {
				t.Fatal(err)
			}
			closed := make(chan time.Duration, 1)
			go func() {
				_, _ = io.Copy(io.Discard, c) // returns when the server closes
				closed <- time.Since(start)
			}()
			clientDone := 10 * time.Second
			if tt.drip != "" {
				clientDone = time.Duration(len(tt.drip)) * tick
			}
			ticker := time.NewTicker(tick)
			defer ticker.Stop()
			deadline := time.After(10 * time.Second)
			for i := 0; ; i++ {
				select {
				case d := <-closed:
					t.Logf("closed after %v (timeout %v, the client needed %v)", d, tt.limit, clientDone)
					if d < tt.limit || d >= clientDone {
						t.Fatalf("closed after %v: not the %v timeout (the client needed %v)", d, tt.limit, clientDone)
					}
					return
				case <-deadline:
					t.Fatalf("connection still open after 10s (timeout %v)", tt.limit)
				case <-ticker.C:
					if i < len(tt.drip) {
						_, _ = c.Write([]byte{tt.drip[i]})
					}
				}
			}
		})
	}
}

func TestForwardedRequestIsSanitized(t *testing.T) {
	tests := []struct {
		name       string
		trusted    []string // trusted_proxies: forward-auth's, not proxy mode's
		forwarders []string
		wantXFF    string
	}{
		{"by default no client is a proxy", nil, nil, "127.0.0.1"},
		{"trusted_proxies are not proxy mode's forwarders", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
		{"client not a forwarder", nil, []string{"10.9.9.9/32"}, "127.0.0.1"},
		{"client a forwarder", nil, []string{"127.0.0.0/8"}, "6.6.6.6, 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 2*time.Second, func(_ *harness, c *enforcer.Config) {
				c.TrustedProxies, c.ForwardedFor = tt.trusted, tt.forwarders
			})
			resp, b, _ := h.rawRequest(t, post("/mcp", h.token(t),
				"Connection: keep-alive, X-Secret\r\n", "X-Secret: s\r\n", "Keep-Alive: timeout=5\r\n",
				"Proxy-Authorization: Basic eDp5\r\n", "Te: trailers\r\n", "Upgrade: websocket\r\n",
				"X-Forwarded-For: 6.6.6.6\r\n", "X-Forwarded-Host: evil.test\r\n", "X-Forwarded-Proto: https\r\n",
				"X-Forwarded-Uri: /admin\r\n", "X-Original-URI: /admin\r\n", "Forwarded: for=6.6.6.6\r\n", "X-Real-Ip: 6.6.6.6\r\n",
				"X-Rampart-Tenant: evil\r\n", "X-Rampart-Role: admin\r\n", "X-Kept: yes\r\n",
				"X-HTTP-Method-Override: DELETE\r\n", "X-Original-URL: /admin\r\n", "X-Rewrite-URL: /admin\r\n"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %v", resp.StatusCode, b)
			}
			up := h.lastUpstream()
			for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "Te", "Upgrade", "X-Forwarded-Uri",
				"X-Original-Uri", "Forwarded", "X-Real-Ip", "X-Rampart-Role", "X-Http-Method-Override", "X-Original-Url", "X-Rewrite-Url"} {
				if v, ok := up[k]; ok {
					t.Errorf("%s reached the backend: %q", k, v)
				}
			}
			if up.Get("X-Kept") != "yes" || up.Values(enforcer.HeaderTenant)[0] != "acme" || len(up.Values(enforcer.HeaderTenant)) != 1 {
				t.Errorf("headers = %v", up)
			}
			if got := strings.Join(up.Values("X-Forwarded-For"), ", "); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tt.wantXFF)
			}
			if up.Get("X-Forwarded-Host") != "tools.test" || up.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("X-Forwarded-Host %q, -Proto %q", up.Get("X-Forwarded-Host"), up.Get("X-Forwarded-Proto"))
			}
		})
	}
}

func TestNonCanonicalPathsRefused(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	tok := h.token(t)
	for _, path := range []string{"/mcp/../admin", "//mcp", "/mcp/./x", "/mcp%2f..%2fadmin", "/mcp/%2e%2e/admin", `/mcp\..\admin`,
		// Forms backends normalise on their own: matrix parameters
		// (Tomcat/Spring resolve /mcp/..;/admin to /admin), double
		// encoding, overlong UTF-8, characters that NFKC-fold to a
		// separator, control characters.
		"/mcp/..;/admin", "/mcp;jsessionid=1", "/mcp/%3b/admin", "/mcp/%252e%252e/admin", "/mcp/%c0%ae%c0%ae/admin",
		"/mcp/%ef%bc%8e%ef%bc%8e/admin", "/mcp/%ef%bc%8fadmin", "/mcp/%e2%88%95admin", "/mcp/%ef%bc%bcadmin", "/mcp%09", "/mcp/%0d%0aX:y", "/mcp/%ff", "/mcp/%7f"} {
		t.Run(path, func(t *testing.T) {
			before := h.hits.Load()
			resp, b, _ := h.rawRequest(t, post(path, tok))
			e, _ := b["error"].(map[string]any)
			if resp.StatusCode != http.StatusBadRequest || e["code"] != string(enforcer.CodePathInvalid) || h.hits.Load() != before {
				t.Fatalf("status %d body %v hits %d", resp.StatusCode, b, h.hits.Load()-before)
			}
		})
	}
}

// TestUnrecordableTenantRefusedAndRecorded: a tenant claim that cannot name
// a subject used to fail at publish, as 503 audit_unavailable with no event
// anywhere; a token without a tenant was filed with unidentified callers.
// Both are refused as the token's fault, and recorded.
func TestUnrecordableTenantRefusedAndRecorded(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	for name, tenant := range map[string]any{"escapes past a subject token": strings.Repeat(".", 70), "absent": nil, "empty": ""} {
		t.Run(name, func(t *testing.T) {
			tok := h.tokenWith(t, func(c map[string]any) {
				if tenant == nil {
					delete(c, "tenant")
				} else {
					c["tenant"] = tenant
				}
			})
			resp, b, _ := h.rawRequest(t, post("/mcp", tok))
			e, _ := b["error"].(map[string]any)
			if resp.StatusCode != http.StatusUnauthorized || e["code"] != "token_claims" || h.hits.Load() != 0 {
				t.Fatalf("status %d body %v hits %d", resp.StatusCode, b, h.hits.Load())
			}
			d := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindDecision)[event.KindDecision]
			if d.Decision.Code != "token_claims" || d.Tenant != "" {
				t.Errorf("decision %+v tenant %q", d.Decision, d.Tenant)
			}
		})
	}
}

// TestOversizedValuesRecordedTruncated: a tool name that escapes to more
// than a JetStream message holds made its request unrecordable (503
// audit_unavailable, no event). It is decided whole and recorded cut,
// with the cut named.
func TestOversizedValuesRecordedTruncated(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	tool := strings.Repeat("<", 300_000) // six bytes each once escaped for JSON
	r := h.post(t, toolCall(tool, `{}`), http.Header{"Authorization": {"Bearer " + h.token(t)}})
	if r.status != http.StatusForbidden || errorCode(r) != "policy_denied" {
		t.Fatalf("status %d: %v", r.status, r.body)
	}
	d := h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if len(d.Request.Tool) != 4096 || !slices.Contains(d.Request.Truncated, "tool") || d.Decision.RuleID != "default-deny" {
		t.Errorf("recorded tool of %d bytes, truncated %v, rule %q", len(d.Request.Tool), d.Request.Truncated, d.Decision.RuleID)
	}
	// A prompt's name is recorded in its own field, cut alike.
	r = h.post(t, `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"`+tool+`"}}`, http.Header{"Authorization": {"Bearer " + h.token(t)}})
	if r.status != http.StatusForbidden || errorCode(r) != "policy_denied" {
		t.Fatalf("prompt: status %d: %v", r.status, r.body)
	}
	d = h.events(t, r.requestID, event.KindDecision)[event.KindDecision]
	if len(d.Request.Prompt) != 4096 || !slices.Contains(d.Request.Truncated, "prompt") {
		t.Errorf("recorded prompt of %d bytes, truncated %v", len(d.Request.Prompt), d.Request.Truncated)
	}
}

// TestTenantForeignTokenRefusedWithItsCode: a token whose tenant claim names
// another tenant than the one its issuer is bound to is refused with a code
// of its own, in the answer and in the decision, so detections match the
// code and never the reason's text.
func TestTenantForeignTokenRefusedWithItsCode(t *testing.T) {
	h := newHarness(t, 2*time.Second, func(_ *harness, c *enforcer.Config) { c.Identity.Tenant = "acme" })
	for name, claim := range map[string]string{"another tenant": "globex", "case-folded own tenant": "ACME"} {
		t.Run(name, func(t *testing.T) {
			tok := h.tokenWith(t, func(c map[string]any) { c["tenant"] = claim })
			resp, b, _ := h.rawRequest(t, post("/mcp", tok))
			e, _ := b["error"].(map[string]any)
			if resp.StatusCode != http.StatusUnauthorized || e["code"] != string(enforcer.CodeTokenTenantForeign) || h.hits.Load() != 0 {
				t.Fatalf("status %d body %v hits %d", resp.StatusCode, b, h.hits.Load())
			}
			d := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindDecision)[event.KindDecision]
			if d.Decision.Code != string(enforcer.CodeTokenTenantForeign) || d.Decision.Effect != event.EffectDeny {
				t.Errorf("decision %+v", d.Decision)
			}
		})
	}
	// The issuer's own tenant is accepted: the code is the mismatch's alone.
	tok := h.tokenWith(t, func(c map[string]any) { c["tenant"] = "acme" })
	if resp, b, _ := h.rawRequest(t, post("/mcp", tok)); resp.StatusCode == http.StatusUnauthorized {
		t.Fatalf("own tenant refused: %v", b)
	}
}
