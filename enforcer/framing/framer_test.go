package framing

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// framingCases are raw request streams and the code the framer refuses
// them with ("" when it lets them pass). They seed FuzzFramer too.
var framingCases = []struct {
	name string
	raw  string
	code Code
}{
	{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"post with length", "POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", ""},
	{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", ""},
	{"pipelined", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"crlf between requests", "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00", ""},
	{"body looks like a request", "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: x\r\n\r\n", ""},
	{"HTTP/1.0 with length", "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", ""},
	{"obs-text value", "GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n", ""},
	{"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Malformed},
	{"TE and CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", Malformed},
	{"conflicting CL", "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nhello", Malformed},
	{"repeated equal CL", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", Malformed},
	{"CL list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", Malformed},
	{"CL sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", Malformed},
	{"CL minus zero", "POST / HTTP/1.1\r\nContent-Length: -0\r\n\r\n", Malformed},
	{"TE not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Malformed},
	{"TE twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Malformed},
	// net/http ignores Transfer-Encoding in HTTP/1.0 and reads no body:
	// the chunks would be read as the next request.
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Malformed},
	{"space before colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", Malformed},
	{"field name not a token", "GET / HTTP/1.1\r\nX@A: 1\r\n\r\n", Malformed},
	{"control in value", "GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", Malformed},
	{"bare CR in field", "GET / HTTP/1.1\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n", Malformed},
	{"obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n", Malformed},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", Malformed},
	{"bare LF before request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed},
	{"request line of two parts", "GET /\r\nHost: a\r\n\r\n", Malformed},
	{"request line of four parts", "GET / x HTTP/1.1\r\nHost: a\r\n\r\n", Malformed},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", Malformed},
	{"PRI after a request", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Malformed},
	{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", Malformed},
	{"chunk size with space", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", Malformed},
	{"chunk overrun", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", Malformed},
	{"bare LF in trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\nGET / HTTP/1.1\r\n\r\n", Malformed},
	{"smuggled second request", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Malformed},
}

// feedSplit feeds raw to f step bytes at a time and returns the refusal.
func feedSplit(f *framer, raw string, step int) *Refusal {
	for i := 0; i < len(raw); i += step {
		if r := f.feed([]byte(raw[i:min(i+step, len(raw))])); r != nil {
			return r
		}
	}
	return nil
}

// verdict is the code r refuses with, "" when r is nil.
func verdict(r *Refusal) Code {
	if r == nil {
		return ""
	}
	return r.Code
}

func TestFramer(t *testing.T) {
	for _, tt := range framingCases {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and byte by byte: where reads split must not matter.
			for _, step := range []int{len(tt.raw), 1, 7} {
				r := feedSplit(&framer{limit: 1 << 10}, tt.raw, step)
				if verdict(r) != tt.code {
					t.Fatalf("step %d: %v, want %q", step, r, tt.code)
				}
			}
		})
	}
}

// TestFramerLimits checks that a header block or trailers the framer
// cannot follow are refused, never let through unchecked, however the
// stream is split into reads.
func TestFramerLimits(t *testing.T) {
	const limit = 256
	block := func(n int) string { // a header block of exactly n bytes
		head := "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
		return head + strings.Repeat("p", n-len(head)-4) + "\r\n\r\n"
	}
	chunked := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
	smuggled := "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	tests := []struct {
		name string
		raw  string
		code Code
	}{
		{"block at the limit", block(limit), ""},
		{"block at the limit, twice", block(limit) + block(limit), ""},
		{"block one over", block(limit + 1), HeadersTooLarge},
		{"block far over", block(100 * limit), HeadersTooLarge},
		{"block over, then smuggled", block(limit+1) + smuggled, HeadersTooLarge},
		{"at the limit, then over, then smuggled", block(limit) + block(limit+1) + smuggled, HeadersTooLarge},
		{"one long line, no end", "GET /" + strings.Repeat("a", 2*limit), HeadersTooLarge},
		{"many small fields", "GET / HTTP/1.1\r\n" + strings.Repeat("X: 1\r\n", limit), HeadersTooLarge},
		{"trailers at their bound", chunked + "X: " + strings.Repeat("t", min(limit, maxTrailers)-7) + "\r\n\r\n", ""},
		{"trailers over their bound", chunked + "X: " + strings.Repeat("t", min(limit, maxTrailers)-6) + "\r\n\r\n", HeadersTooLarge},
		{"many trailers, then smuggled", chunked + strings.Repeat("X: 1\r\n", limit) + "\r\n" + smuggled, HeadersTooLarge},
		{"chunk line at its bound", strings.TrimSuffix(chunked, "0\r\n") + "0;" + strings.Repeat("e", maxChunkLine-4) + "\r\n\r\n", ""},
		{"chunk line over its bound", strings.TrimSuffix(chunked, "0\r\n") + "0;" + strings.Repeat("e", maxChunkLine-3) + "\r\n\r\n", Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{len(tt.raw), 1, 7, 4096} {
				f := framer{limit: limit}
				if r := feedSplit(&f, tt.raw, step); verdict(r) != tt.code {
					t.Fatalf("step %d: %v, want %q", step, r, tt.code)
				}
				if f.state == stH2 {
					t.Fatal("framer stopped checking")
				}
				if len(f.line) > max(limit, maxChunkLine) {
					t.Fatalf("framer holds %d bytes", len(f.line))
				}
			}
		})
	}
}

// TestRefusalRecord checks what a refusal keeps of the request for the
// record: method and target, bounded, escaped, flagged when cut.
func TestRefusalRecord(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name   string
		raw    string
		limit  int
		want   Refusal
		reason string // a part of Reason
	}{
		{"second request", "GET /a HTTP/1.1\r\n\r\nPOST /x?y=1 HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 1 << 10,
			Refusal{Code: Malformed, Request: 2, Method: "POST", Target: "/x?y=1"}, "both Content-Length and Transfer-Encoding"},
		{"in a chunked body", "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n", 1 << 10,
			Refusal{Code: Malformed, Request: 1, Method: "POST", Target: "/up"}, "chunk data"},
		{"target too long to keep", "GET /" + long + " HTTP/1.1\r\nX: a\x00\r\n\r\n", 1 << 10,
			Refusal{Code: Malformed, Request: 1, Method: "GET", Target: "/" + long[:MaxRecorded-1], Truncated: true}, "invalid value"},
		{"escaped", "GET /\xff\x01 HTTP/1.1\r\n\r\n", 1 << 10,
			Refusal{Code: Malformed, Request: 1, Method: "GET", Target: "/%FF%01"}, "malformed request line"},
		{"request line cut by the limit", "GET /" + long, 64,
			Refusal{Code: HeadersTooLarge, Request: 1, Method: "GET", Target: "/" + long[:64-5], Truncated: true}, "header block over 64 bytes"},
		{"fields cut by the limit", "GET /a HTTP/1.1\r\nX: " + long, 64,
			Refusal{Code: HeadersTooLarge, Request: 1, Method: "GET", Target: "/a"}, "header block over 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := feedSplit(&framer{limit: tt.limit}, tt.raw, 3)
			if r == nil {
				t.Fatal("not refused")
			}
			if !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("reason %q, want %q in it", r.Reason, tt.reason)
			}
			r.Reason = ""
			if *r != tt.want {
				t.Errorf("refusal %+v, want %+v", *r, tt.want)
			}
		})
	}
}

// FuzzFramer checks that the framer never panics, that its verdict does
// not depend on how the stream is split into reads, and that net/http
// reads every request the framer let through with the same boundaries.
func FuzzFramer(f *testing.F) {
	for _, tt := range framingCases {
		f.Add([]byte(tt.raw), uint8(3))
	}
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		whole := framer{limit: 512}
		rWhole := whole.feed(raw)
		s := int(step%16) + 1
		split := framer{limit: 512}
		rSplit := feedSplit(&split, string(raw), s)
		if verdict(rWhole) != verdict(rSplit) {
			t.Fatalf("whole: %v, split by %d: %v", rWhole, s, rSplit)
		}
		sameBoundaries(t, raw)
	})
}

// span is where a request's header block ends and where it ends.
type span struct{ head, end int }

// sameBoundaries fails t when net/http reads, from bytes the framer let
// through, a request that the framer sees elsewhere or not at all.
func sameBoundaries(t *testing.T, raw []byte) {
	t.Helper()
	var f framer
	f.limit = 512
	var seen []span
	refusedAt := len(raw) + 1 // the first byte that net/http would not get
	for i := range raw {
		n, st := f.n, f.state
		if f.feed(raw[i:i+1]) != nil {
			refusedAt = i
			break
		}
		if f.n > n {
			seen = append(seen, span{head: i + 1})
		}
		if f.state == stHeaders && (st != stHeaders || f.n > n) {
			seen[len(seen)-1].end = i + 1
		}
	}
	if f.state == stH2 {
		return // net/http serves h2c, or closes after the PRI request
	}
	for i, want := range httpBoundaries(raw) {
		if want.end > refusedAt {
			return // net/http never gets the whole request
		}
		if i >= len(seen) || seen[i] != want {
			t.Fatalf("request %d: net/http reads %+v, the framer %+v (all: %+v)", i+1, want, seen, httpBoundaries(raw))
		}
	}
}

// httpBoundaries reads raw as net/http's server does, up to the first
// request it cannot read whole.
func httpBoundaries(raw []byte) []span {
	rd := bytes.NewReader(raw)
	br := bufio.NewReaderSize(rd, 4096) // the server's buffer, which bounds chunk lines and trailers
	offset := func() int { return len(raw) - rd.Len() - br.Buffered() }
	var spans []span
	last := ""
	for {
		if last == http.MethodPost { // as conn.readRequest: tolerance for old clients
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return spans
		}
		head := offset()
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return spans
		}
		spans = append(spans, span{head, offset()})
		if req.Method == "PRI" {
			return spans
		}
		last = req.Method
	}
}

// BenchmarkFramer measures the framing check on a typical MCP tool call,
// read in one piece: the cost every HTTP/1 request pays.
func BenchmarkFramer(b *testing.B) {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"` + strings.Repeat("x", 1000) + `"}}}`
	raw := []byte("POST /mcp HTTP/1.1\r\nHost: tools.test\r\nAuthorization: Bearer " + strings.Repeat("t", 600) +
		"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	f := framer{limit: 36 << 10}
	for b.Loop() {
		if r := f.feed(raw); r != nil {
			b.Fatal(r)
		}
	}
}
