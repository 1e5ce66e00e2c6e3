package chstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/forensic"
)

// Range selects stored history to replay: events whose time is in
// [From, To), of one tenant when Tenant is set.
type Range struct {
	From, To time.Time
	Tenant   string
}

// Validate checks r.
func (r Range) Validate() error {
	switch {
	case r.From.IsZero() || r.To.IsZero():
		return errors.New("clickhouse: a replay needs both ends of its time range")
	case !r.From.Before(r.To):
		return fmt.Errorf("clickhouse: replay range is empty: %s is not before %s", r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	return nil
}

// replayColumns are what a replay reads: the event, where the stream
// carried it, and what the agent inventory said of its agent when it was
// stored, so rules on agent_* replay as they ran live.
var replayColumns = append(append([]ddl.Column{}, ddl.EventFields...), mustColumn("stream_seq"),
	mustColumn("agent_owner"), mustColumn("agent_team"), mustColumn("agent_purpose"), mustColumn("agent_risk_tier"),
	mustColumn("agent_environment"), mustColumn("agent_registered"), mustColumn("agent_inventory"))

func mustColumn(name string) ddl.Column {
	c, ok := ddl.Lookup(name)
	if !ok {
		panic("chstore: events table has no column " + name)
	}
	return c
}

// replaySortBytes is how much of the sort a replay asks of the server it
// may hold in memory before spilling to disk: a long range costs disk,
// never the server's memory.
const replaySortBytes = 256 << 20

// Replay reads the events of r back in the order the stream carried them
// (stream_seq, and within one message, a bundle of one instance's events,
// their seq), each once (the events view: a redelivered copy is not
// replayed twice), rebuilt through the events table's codec, and visits
// them one at a time (the event, its stream sequence and the agent_*
// columns): the client holds one row, however long the range.
// Over the HTTP interface when Config.HTTPAddr is set, else the native
// protocol.
func (c *Client) Replay(ctx context.Context, r Range, visit func(row *ddl.Row) error) error {
	if err := r.Validate(); err != nil {
		return err
	}
	q := replayQuery(c.cfg.Database, ddl.Names(replayColumns), r)
	if c.cfg.HTTPAddr != "" {
		return c.replayHTTP(ctx, q, visit)
	}
	return c.replayNative(ctx, q, visit)
}

// replayQuery selects columns of r's events in stream order.
func replayQuery(db string, columns []string, r Range) string {
	conds := []string{
		"event_time_us >= " + strconv.FormatInt(r.From.UnixMicro(), 10),
		"event_time_us < " + strconv.FormatInt(r.To.UnixMicro(), 10),
	}
	if r.Tenant != "" {
		conds = append(conds, "tenant = "+forensic.Quote(r.Tenant))
	}
	return fmt.Sprintf("SELECT %s FROM %s.events_raw FINAL WHERE %s ORDER BY stream_seq, instance, seq",
		strings.Join(columns, ", "), db, strings.Join(conds, " AND "))
}

func (c *Client) replayHTTP(ctx context.Context, q string, visit func(*ddl.Row) error) error {
	body, err := c.rowBinaryQuery(ctx, q, url.Values{"max_bytes_before_external_sort": {strconv.Itoa(replaySortBytes)}})
	if err != nil {
		return err
	}
	defer body.Close()
	d := ddl.NewDecoder(bufio.NewReaderSize(body, 256<<10))
	for {
		if more, err := d.More(); err != nil {
			return fmt.Errorf("clickhouse: replay: %w", err)
		} else if !more {
			return nil
		}
		var row ddl.Row
		if err := d.Decode(replayColumns, &row); err != nil {
			return fmt.Errorf("clickhouse: replay: decode RowBinary: %w", err)
		}
		if err := visit(&row); err != nil {
			return err
		}
	}
}

func (c *Client) replayNative(ctx context.Context, q string, visit func(*ddl.Row) error) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_bytes_before_external_sort": replaySortBytes}))
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("clickhouse: replay: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		dests := ddl.ScanDests(replayColumns)
		if err := rows.Scan(dests...); err != nil {
			return fmt.Errorf("clickhouse: replay: scan: %w", err)
		}
		var row ddl.Row
		if err := ddl.Scan(replayColumns, dests, &row); err != nil {
			return fmt.Errorf("clickhouse: replay: %w", err)
		}
		if err := visit(&row); err != nil {
			return err
		}
	}
	return rows.Err()
}
