package enforcer

import (
	"bytes"
	"slices"
	"testing"
)

func TestSSEData(t *testing.T) {
	tests := []struct {
		name, stream string
		want         []string
	}{
		{"one event", "data: {}\n\n", []string{"{}"}},
		{"lines joined", "data: a\ndata:b\ndata:  c\n\n", []string{"a\nb\n c"}},
		{"CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		// A bare CR ends a line to the standard, not to the Go SDK: the
		// stream is not read past it (and the enforcer cuts it off there).
		{"bare CR", "data: a\r\n\r\ndata: {\"x\":\r1}\n\n", []string{"a"}},
		{"CR line ends", "data: a\r\rdata: b\r\r", nil},
		{"comments and fields", ": ping\nevent: message\nid: 3\nretry: 10\ndata: x\n\n", []string{"x"}},
		{"no data, no event", "event: message\n\n", nil},
		{"empty data is an event", "data\n\n", []string{""}},
		{"cut off before the blank line", "data: a\n\ndata: b\n", []string{"a"}},
		{"unterminated line", "data: a\n\ndata: b", []string{"a"}},
		{"field without colon", "datax\ndata: y\n\n", []string{"y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, d := range sseData([]byte(tt.stream)) {
				got = append(got, string(d))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("sseData(%q) = %q, want %q", tt.stream, got, tt.want)
			}
		})
	}
}

// FuzzSSEData: any stream splits without a panic, and no line end survives
// into data but the LF that joins data lines.
func FuzzSSEData(f *testing.F) {
	f.Add([]byte("data: a\r\ndata: b\r\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range sseData(b) {
			if bytes.IndexByte(d, '\r') >= 0 {
				t.Fatalf("CR in data %q of %q", d, b)
			}
		}
	})
}
