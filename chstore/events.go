package chstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// ReadEvents reads events back from events_raw — every stored copy, as
// `rampart verify` must see them — where the condition holds (a SQL
// boolean over events_raw's columns; the caller builds it from quoted
// values). It rebuilds each event exactly as ddl.EventRow flattened it.
func (c *Client) ReadEvents(ctx context.Context, where string, visit func(*event.Event) error) error {
	cols := ddl.EventFields
	q := fmt.Sprintf("SELECT %s FROM %s.events_raw WHERE %s", strings.Join(ddl.Names(cols), ", "), c.cfg.Database, where)
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("clickhouse: read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		dests := ddl.ScanDests(cols)
		if err := rows.Scan(dests...); err != nil {
			return fmt.Errorf("clickhouse: scan event: %w", err)
		}
		r := ddl.Row{}
		if err := ddl.Scan(cols, dests, &r); err != nil {
			return fmt.Errorf("clickhouse: %w", err)
		}
		if err := visit(r.Event); err != nil {
			return err
		}
	}
	return rows.Err()
}
