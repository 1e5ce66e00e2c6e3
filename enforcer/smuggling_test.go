package enforcer_test

import (
	"bufio"
	"crypto/tls"
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
)

// answer is one response read off a raw connection.
type answer struct {
	status int
	close  bool
	code   string // the JSON error code, if any
}

// pipeline writes raw in one write on c and reads the responses until
// the server closes the connection, or until n were read and the last
// keeps it open; closed reports that the server closed it.
func pipeline(t *testing.T, c net.Conn, raw string, n int) (answers []answer, closed bool) {
	t.Helper()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }() // the server may close mid-write
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return answers, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &body)
		answers = append(answers, answer{resp.StatusCode, resp.Close, body.Error.Code})
		if len(answers) >= n && !resp.Close {
			return answers, false
		}
	}
}

// withHeaderBlock pads the header block of the request raw (request line
// to the blank line) to exactly n bytes.
func withHeaderBlock(t *testing.T, raw string, n int) string {
	t.Helper()
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	pad := n - len(head) - len("\r\nX-Pad: \r\n\r\n")
	if pad < 0 {
		t.Fatalf("request head already %d bytes", len(head))
	}
	out := head + "\r\nX-Pad: " + strings.Repeat("p", pad) + "\r\n\r\n" + body
	if got := strings.Index(out, "\r\n\r\n") + 4; got != n {
		t.Fatalf("header block %d bytes, want %d", got, n)
	}
	return out
}

// TestSmugglingAfterOversizedHeaders is the pipeline that once switched
// the framing check off for a connection: a small request, one whose
// header block is over the check's old limit (max_header_bytes + 4 KiB)
// but that net/http still read thanks to its buffer's slop, then a
// request with both Content-Length and Transfer-Encoding. The oversized
// request must be refused with 431 and the connection closed, so the
// third is never read, in cleartext and over TLS.
func TestSmugglingAfterOversizedHeaders(t *testing.T) {
	for _, tt := range cleartextAndTLS(t) {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			tok := h.token(t)
			body := toolCall("search", `{}`)
			chunked := strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
			smuggled := "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + tok + "\r\n" +
				"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
			raw := post("/mcp", tok) + withHeaderBlock(t, post("/mcp", tok), 37933) + smuggled
			c, err := tt.dial(h.addr)
			if err != nil {
				t.Fatal(err)
			}
			before := h.hits.Load()
			got, closed := pipeline(t, c, raw, 2)
			want := []answer{{http.StatusOK, false, ""}, {http.StatusRequestHeaderFieldsTooLarge, true, string(enforcer.CodeHeadersTooLarge)}}
			if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("answers %+v, want %+v", got, want)
			}
			if !closed {
				t.Error("connection left open after the refusal")
			}
			if hits := h.hits.Load() - before; hits != 1 {
				t.Errorf("backend hit %d times, want 1", hits)
			}
		})
	}
}

// TestOversizedHeadersRefused drives header blocks and trailers at and
// past max_header_bytes over the wire. Every one past it is answered by
// the framing check (431, JSON, Connection: close) and never reaches
// net/http's own plain-text 431 or the backend, however it is split.
func TestOversizedHeadersRefused(t *testing.T) {
	const limit = 8 << 10
	h := newHarness(t, 2*time.Second, func(_ *harness, c *enforcer.Config) { c.MaxHeaderBytes = limit })
	tok := h.token(t)
	body := toolCall("search", `{}`)
	chunkedHead := "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n"
	smuggled := "POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + tok + "\r\n" +
		"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
		return b.String()
	}
	ok := answer{http.StatusOK, false, ""}
	tooLarge := answer{http.StatusRequestHeaderFieldsTooLarge, true, string(enforcer.CodeHeadersTooLarge)}
	malformed := answer{http.StatusBadRequest, true, string(enforcer.CodeRequestMalformed)}
	tests := []struct {
		name  string
		raw   string
		write int // bytes per write; 0: one write
		want  []answer
	}{
		{"block at the limit", withHeaderBlock(t, post("/mcp", tok), limit), 0, []answer{ok}},
		{"block one over the limit", withHeaderBlock(t, post("/mcp", tok), limit+1), 0, []answer{tooLarge}},
		{"block at the limit, then one over", withHeaderBlock(t, post("/mcp", tok), limit) + withHeaderBlock(t, post("/mcp", tok), limit+1), 0, []answer{ok, tooLarge}},
		{"over the limit in many reads", withHeaderBlock(t, post("/mcp", tok), 3*limit), 97, []answer{tooLarge}},
		{"over by net/http's slop", withHeaderBlock(t, post("/mcp", tok), limit+4000), 0, []answer{tooLarge}},
		{"200 KB token", post("/mcp", strings.Repeat("t", 200<<10)), 0, []answer{tooLarge}},
		{"10,000 headers", post("/mcp", tok, many(10000)), 0, []answer{tooLarge}},
		{"giant request line", post("/mcp?q="+strings.Repeat("q", 2*limit), tok), 0, []answer{tooLarge}},
		{"no line end at all", "POST /" + strings.Repeat("a", 2*limit), 0, []answer{tooLarge}},
		{"over the limit, then smuggled", withHeaderBlock(t, post("/mcp", tok), limit+1) + smuggled, 0, []answer{tooLarge}},
		{"small, over the limit by slop, smuggled", post("/mcp", tok) + withHeaderBlock(t, post("/mcp", tok), limit+3000) + smuggled, 0, []answer{ok, tooLarge}},
		{"chunked, small trailers", chunkedHead + "X-T: 1\r\n\r\n", 0, []answer{ok}},
		{"trailers over the limit", chunkedHead + "X-T: " + strings.Repeat("t", limit) + "\r\n\r\n", 0, []answer{tooLarge}},
		{"many trailers over the limit", chunkedHead + many(2000) + "\r\n", 0, []answer{tooLarge}},
		{"trailers over the limit, then smuggled", chunkedHead + "X-T: " + strings.Repeat("t", limit) + "\r\n\r\n" + smuggled, 0, []answer{tooLarge}},
		{"chunk size line too long", strings.TrimSuffix(chunkedHead, "0\r\n") + "0;" + strings.Repeat("e", 5000) + "\r\n\r\n", 0, []answer{malformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			before := h.hits.Load()
			var got []answer
			var closed bool
			if tt.write == 0 {
				got, closed = pipeline(t, c, tt.raw, len(tt.want))
			} else {
				got, closed = pipeline(t, &slowWriter{c, tt.write}, tt.raw, len(tt.want))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("answers %+v, want %+v", got, tt.want)
			}
			if last := tt.want[len(tt.want)-1]; last.close && !closed {
				t.Error("connection left open after the refusal")
			}
			oks := 0
			for _, a := range tt.want {
				if a == ok {
					oks++
				}
			}
			if hits := h.hits.Load() - before; hits != int64(oks) {
				t.Errorf("backend hit %d times, want %d", hits, oks)
			}
		})
	}
}

// slowWriter writes to its conn n bytes at a time, so that the server
// reads a stream in many pieces.
type slowWriter struct {
	net.Conn
	n int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i += w.n {
		if _, err := w.Conn.Write(p[i:min(i+w.n, len(p))]); err != nil {
			return i, err
		}
		time.Sleep(time.Millisecond) // let each piece go out alone
	}
	return len(p), nil
}

// wire is an enforcer and how a test dials it: in cleartext or over TLS
// (HTTP/1.1 by ALPN), where the framing check has a listener of its own.
type wire struct {
	name string
	h    *harness
	dial func(addr string) (net.Conn, error)
}

func cleartextAndTLS(t *testing.T) []wire {
	ca := newCA(t, t.TempDir())
	overTLS := newHarness(t, 2*time.Second, withTLS(t, ca, false, false))
	return []wire{
		{"cleartext", newHarness(t, 2*time.Second), func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }},
		{"TLS", overTLS, func(addr string) (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
		}},
	}
}
