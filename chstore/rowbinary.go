package chstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// ScanEvents is ReadEvents over ClickHouse's HTTP interface in RowBinary,
// decoded by hand: several times faster than scanning rows over the native
// protocol, for `rampart verify` over millions of events. It needs
// Config.HTTPAddr.
func (c *Client) ScanEvents(ctx context.Context, where string, visit func(*event.Event) error) error {
	body, err := c.rowBinary(ctx, ddl.Names(ddl.EventFields), where)
	if err != nil {
		return err
	}
	return decodeEvents(body, visit)
}

// decodeEvents decodes a RowBinary body of ddl.EventFields into events.
func decodeEvents(body io.ReadCloser, visit func(*event.Event) error) error {
	defer body.Close()
	return DecodeEvents(bufio.NewReaderSize(body, 256<<10), visit)
}

// DecodeEvents decodes RowBinary rows of ddl.EventFields from r, as a
// query selecting those columns returns them from any engine, and visits
// each event.
func DecodeEvents(r *bufio.Reader, visit func(*event.Event) error) error {
	cols := ddl.EventFields
	d := ddl.NewDecoder(r)
	const slab = 1024
	var (
		evs   []event.Event
		ids   []event.Identity
		reqs  []event.Request
		decs  []event.Decision
		resps []event.Response
	)
	for {
		if more, err := d.More(); err != nil {
			return fmt.Errorf("clickhouse: read RowBinary: %w", err)
		} else if !more {
			return nil
		}
		if len(evs) == 0 {
			evs, ids, reqs, decs, resps = make([]event.Event, slab), make([]event.Identity, slab),
				make([]event.Request, slab), make([]event.Decision, slab), make([]event.Response, slab)
		}
		e, id, r, dec, rs := &evs[0], &ids[0], &reqs[0], &decs[0], &resps[0]
		evs, ids, reqs, decs, resps = evs[1:], ids[1:], reqs[1:], decs[1:], resps[1:]
		e.Identity, e.Request, e.Decision, e.Response = id, r, dec, rs
		if err := d.Decode(cols, &ddl.Row{Event: e}); err != nil {
			return fmt.Errorf("clickhouse: decode RowBinary: %w", err)
		}
		if err := visit(e); err != nil {
			return err
		}
	}
}

// rowBinary runs a query selecting columns from events_raw where the
// condition holds, over the HTTP interface, and returns its RowBinary body.
func (c *Client) rowBinary(ctx context.Context, columns []string, where string) (io.ReadCloser, error) {
	q := fmt.Sprintf("SELECT %s FROM %s.events_raw WHERE %s", strings.Join(columns, ", "), c.cfg.Database, where)
	return c.rowBinaryQuery(ctx, q, nil)
}

// rowBinaryQuery runs a query over the HTTP interface, with settings
// beyond the defaults, and returns its RowBinary body.
func (c *Client) rowBinaryQuery(ctx context.Context, q string, settings url.Values) (io.ReadCloser, error) {
	q += " FORMAT RowBinary"
	params := url.Values{
		"database": {c.cfg.Database},
		// One server thread already outpaces the one goroutine decoding
		// the stream; more only take CPU from it (measured: BENCHMARKS.md).
		"max_threads": {"1"},
	}
	for k, v := range settings {
		params[k] = v
	}
	resp, err := c.http.post(ctx, params, func() io.Reader { return strings.NewReader(q) })
	if err != nil {
		return nil, fmt.Errorf("clickhouse: http query: %w", err)
	}
	return resp.Body, nil
}

// InsertRowBinary inserts rows already encoded in RowBinary (as
// ddl.AppendRowBinary writes them, in the order of columns) into table
// over the HTTP interface, as one block under the server's
// max_insert_block_size (a million rows), failing over between the
// replicas of Config.HTTPAddr. The client's cost is the
// encoding alone: a fraction of the native protocol's appends of one boxed
// value at a time (BENCHMARKS.md). It needs Config.HTTPAddr.
func (c *Client) InsertRowBinary(ctx context.Context, table string, columns []string, rows []byte) error {
	return c.InsertRowBinaryBlocks(ctx, table, columns, [][]byte{rows})
}

// InsertRowBinaryBlocks is InsertRowBinary of blocks sent one after
// another as one insert, so that batches prepared apart go in together
// without being copied into one buffer first.
func (c *Client) InsertRowBinaryBlocks(ctx context.Context, table string, columns []string, blocks [][]byte) error {
	q := fmt.Sprintf("INSERT INTO %s.%s (%s) FORMAT RowBinary", c.cfg.Database, table, strings.Join(columns, ", "))
	resp, err := c.http.post(ctx, url.Values{"query": {q}}, func() io.Reader { return newBlockReader(blocks) })
	if err != nil {
		return fmt.Errorf("clickhouse: insert into %s: %w", table, err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// blockReader reads byte slices one after another. Its Len lets the
// request carry a Content-Length, as a bytes.Reader's does.
type blockReader struct {
	bufs net.Buffers
	n    int
}

func newBlockReader(blocks [][]byte) *blockReader {
	r := &blockReader{bufs: slices.Clone(blocks)} // net.Buffers consumes its slice
	for _, b := range blocks {
		r.n += len(b)
	}
	return r
}

func (r *blockReader) Read(p []byte) (int, error) {
	n, err := r.bufs.Read(p)
	r.n -= n
	return n, err
}

// Len is the number of bytes not yet read.
func (r *blockReader) Len() int { return r.n }
