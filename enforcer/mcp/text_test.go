package mcp_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/rampart-io/rampart/enforcer/mcp"
)

func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   error
	}{
		{"none", http.Header{}, nil},
		{"JSON", http.Header{"Content-Type": {"application/json"}}, nil},
		{"UTF-8 in any case, quoted", http.Header{"Content-Type": {`application/json; Charset="UTF-8"`}}, nil},
		{"identity", http.Header{"Content-Encoding": {"Identity"}}, nil},
		{"chunked", http.Header{"Transfer-Encoding": {"chunked"}}, nil},
		{"gzip", http.Header{"Content-Encoding": {"gzip"}}, mcp.ErrContentEncoding},
		{"GZIP", http.Header{"Content-Encoding": {"GZIP"}}, mcp.ErrContentEncoding},
		{"br", http.Header{"Content-Encoding": {"br"}}, mcp.ErrContentEncoding},
		{"identity, then gzip", http.Header{"Content-Encoding": {"identity, gzip"}}, mcp.ErrContentEncoding},
		{"repeated fields", http.Header{"Content-Encoding": {"identity", "deflate"}}, mcp.ErrContentEncoding},
		{"gzip transfer coding", http.Header{"Transfer-Encoding": {"gzip, chunked"}}, mcp.ErrContentEncoding},
		{"latin1", http.Header{"Content-Type": {"application/json; charset=latin1"}}, mcp.ErrCharset},
		{"UTF-16", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, mcp.ErrCharset},
		{"UTF-7", http.Header{"Content-Type": {"text/plain; charset=utf-7"}}, mcp.ErrCharset},
		{"charset twice", http.Header{"Content-Type": {"application/json; charset=utf-8; charset=latin1"}}, mcp.ErrCharset},
		{"two fields", http.Header{"Content-Type": {"application/json", "text/plain; charset=latin1"}}, mcp.ErrCharset},
		{"joined by a gateway", http.Header{"Content-Type": {"application/json,text/plain; charset=latin1"}}, mcp.ErrCharset},
		{"malformed", http.Header{"Content-Type": {"application/json; charset"}}, mcp.ErrCharset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := mcp.CheckHeader(tt.header); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("CheckHeader = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	var all mcp.Endpoints
	all.SetDefaults()
	some := mcp.Endpoints{Paths: []string{"/mcp", "/a2a/"}}
	tests := []struct {
		e     *mcp.Endpoints
		path  string
		match bool
	}{
		{&all, "/", true},
		{&all, "/anything", true},
		{&all, "", true},
		{&some, "/mcp", true},
		{&some, "/mcp/", true},
		{&some, "/mcp/v1", true},
		{&some, "/mcpx", false},
		{&some, "/a2a/x", true},
		{&some, "/a2a", false},
		{&some, "/", false},
	}
	for _, tt := range tests {
		if got := tt.e.Match(tt.path); got != tt.match {
			t.Errorf("%v.Match(%q) = %v", tt.e.Paths, tt.path, got)
		}
	}
	for _, p := range []string{"mcp", "/mcp/../x", "//mcp", "/mcp/./"} {
		if err := (&mcp.Endpoints{Paths: []string{p}}).Validate(); err == nil {
			t.Errorf("Validate accepted %q", p)
		}
	}
	if err := some.Validate(); err != nil {
		t.Error(err)
	}
}
