package chstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// replicas sends requests to the HTTP interfaces of Config.HTTPAddr with
// the native path's failover: a request that fails, or whose answer is
// lost, goes again to the next replica, and the replica that answered
// takes the requests after it. Sending an insert again is safe: the same
// block to a replicated table is deduplicated by its checksum in
// ZooKeeper (insert_deduplicate), and any copy that slips through
// collapses in the ReplacingMergeTree, read FINAL.
type replicas struct {
	addrs  []string
	next   atomic.Int64 // index of the replica that last answered
	client *http.Client
	user   string
	key    string
}

func newReplicas(cfg Config) *replicas {
	addrs := cfg.HTTPAddrs()
	if len(addrs) == 0 {
		return nil
	}
	dial := &net.Dialer{Timeout: cfg.DialTimeout}
	return &replicas{
		addrs: addrs,
		client: &http.Client{Transport: &http.Transport{
			DialContext:         dial.DialContext,
			MaxIdleConnsPerHost: 8,
			// A silent server is a dead one, as ReadTimeout says for the
			// native protocol; the next replica is tried.
			ResponseHeaderTimeout: cfg.ReadTimeout,
			IdleConnTimeout:       90 * time.Second,
		}},
		user: cfg.Username,
		key:  cfg.Password,
	}
}

// errNoHTTP is returned by the RowBinary paths when http_addr is empty.
var errNoHTTP = errors.New("clickhouse: http_addr is not configured")

// post sends the query in params (or, when body is nil, in the request
// body) to each replica in turn, from the one that last answered, until
// one answers 200; it returns that answer, or every replica's error.
// body is called once per attempt for a fresh reader.
func (r *replicas) post(ctx context.Context, params url.Values, body func() io.Reader) (*http.Response, error) {
	if r == nil {
		return nil, errNoHTTP
	}
	start := int(r.next.Load())
	var errs []error
	for i := range r.addrs {
		at := (start + i) % len(r.addrs)
		resp, err := r.postTo(ctx, r.addrs[at], params, body)
		if err == nil {
			r.next.Store(int64(at))
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (r *replicas) postTo(ctx context.Context, addr string, params url.Values, body func() io.Reader) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: addr, Path: "/", RawQuery: params.Encode()}
	first := body()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), first)
	if err != nil {
		return nil, err
	}
	if b, ok := first.(*blockReader); ok {
		req.ContentLength = int64(b.Len())
	}
	// A fresh body lets the transport send the request again on a new
	// connection when a kept-alive one turns out closed by the server
	// (ClickHouse closes idle ones after a few seconds).
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
	req.Header.Set("X-ClickHouse-User", r.user)
	req.Header.Set("X-ClickHouse-Key", r.key)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}
