package framing

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// framingCases are raw request streams and whether the framer lets them
// pass. They seed FuzzFramer too.
var framingCases = []struct {
	name string
	raw  string
	ok   bool
}{
	{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"post with length", "POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", true},
	{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", true},
	{"pipelined", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"crlf between requests", "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00", true},
	{"body looks like a request", "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: x\r\n\r\n", true},
	{"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"TE and CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", false},
	{"conflicting CL", "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nhello", false},
	{"repeated equal CL", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", false},
	{"CL list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", false},
	{"CL sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", false},
	{"TE not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
	{"TE twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"space before colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", false},
	{"obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n", false},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", false},
	{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", false},
	{"chunk overrun", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", false},
	{"smuggled second request", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
}

func TestFramer(t *testing.T) {
	for _, tt := range framingCases {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and byte by byte: where reads split must not matter.
			for _, step := range []int{len(tt.raw), 1, 7} {
				f := framer{limit: 1 << 10}
				var err error
				for i := 0; i < len(tt.raw) && err == nil; i += step {
					err = f.feed([]byte(tt.raw[i:min(i+step, len(tt.raw))]))
				}
				if (err == nil) != tt.ok {
					t.Fatalf("step %d: err = %v, want ok=%v", step, err, tt.ok)
				}
				if err != nil && !errors.Is(err, errFraming) {
					t.Fatalf("err = %v, not errFraming", err)
				}
			}
		})
	}
}

func TestFramerPassesOverlongHeaders(t *testing.T) {
	// Past the limit net/http answers 431 and closes; the framer must not
	// hold the bytes or refuse them itself.
	f := framer{limit: 64}
	raw := "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 200) + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
	if err := f.feed([]byte(raw)); err != nil || f.state != stPass {
		t.Fatalf("err = %v, state %d", err, f.state)
	}
}

// FuzzFramer checks that the framer never panics and that its verdict
// does not depend on how the stream is split into reads.
func FuzzFramer(f *testing.F) {
	for _, tt := range framingCases {
		f.Add([]byte(tt.raw), uint8(3))
	}
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		whole := framer{limit: 512}
		errWhole := whole.feed(raw)
		s := int(step%16) + 1
		split := framer{limit: 512}
		var errSplit error
		for i := 0; i < len(raw) && errSplit == nil; i += s {
			errSplit = split.feed(raw[i:min(i+s, len(raw))])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, split by %d: %v", errWhole, s, errSplit)
		}
	})
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
		if err := f.feed(raw); err != nil {
			b.Fatal(err)
		}
	}
}
