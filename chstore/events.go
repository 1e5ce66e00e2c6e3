package chstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

// storedColumns are what ReadEvents selects: every column EventRow writes
// that is part of the event itself, in the chain's canonical order.
var storedColumns = func() []string {
	names := make([]string, len(chain.Columns))
	for i, col := range chain.Columns {
		names[i] = col.Name
	}
	return names
}()

// ReadEvents reads events back from events_raw — every stored copy, as
// `rampart verify` must see them — where the condition holds (a SQL
// boolean over events_raw's columns; the caller builds it from quoted
// values). It rebuilds each event exactly as ddl.EventRow flattened it.
func (c *Client) ReadEvents(ctx context.Context, where string, visit func(*event.Event) error) error {
	q := fmt.Sprintf("SELECT %s FROM %s.events_raw WHERE %s", strings.Join(storedColumns, ", "), c.cfg.Database, where)
	rows, err := c.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("clickhouse: read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e                                                      event.Event
			id                                                     event.Identity
			req                                                    event.Request
			dec                                                    event.Decision
			resp                                                   event.Response
			cp                                                     event.Checkpoint
			kind, args, effect                                     string
			timeUS                                                 uint64
			chainSubjects, chainIssuers, headerNames, headerValues []string
			status                                                 int32
		)
		err := rows.Scan(&e.ID, &kind, &timeUS, &e.Tenant, &e.Instance, &e.Epoch, &e.Seq, &e.Prev, &e.RequestID,
			&e.Trace.TraceParent, &e.Trace.TraceState,
			&id.Subject, &id.Issuer, &id.SPIFFEID, &chainSubjects, &chainIssuers, &id.SessionID, &id.TaskID,
			&req.Method, &req.Host, &req.Path, &req.Query, &req.Resource, &headerNames, &headerValues, &req.RPCMethod, &req.Tool, &req.ArgsDigest, &args, &req.BodyBytes, &req.Destination, &req.DataClass,
			&effect, &dec.PolicyID, &dec.RuleID, &dec.PolicyHash, &dec.Reason, &dec.Code, &dec.EvalNanos, &dec.Shadow,
			&status, &resp.DurationNs, &resp.Bytes,
			&cp.KeyID, &cp.Signature, &cp.Unrecorded,
			&id.SessionSource, &id.TaskSource, &req.RPCKind, &req.Prompt, &req.Truncated, &resp.Outcome)
		if err != nil {
			return fmt.Errorf("clickhouse: scan event: %w", err)
		}
		if len(chainSubjects) != len(chainIssuers) || len(headerNames) != len(headerValues) {
			return fmt.Errorf("clickhouse: event %s: paired array columns disagree in length", e.ID)
		}
		if len(headerNames) > 0 {
			req.Headers = make(map[string]string, len(headerNames))
			for i, k := range headerNames {
				req.Headers[k] = headerValues[i]
			}
		}
		e.V, e.Kind = event.Version, event.Kind(kind)
		e.Time = time.UnixMicro(int64(timeUS)).UTC()
		for i := range chainSubjects {
			id.Chain = append(id.Chain, event.Actor{Subject: chainSubjects[i], Issuer: chainIssuers[i]})
		}
		if args != "" {
			req.Args = json.RawMessage(args)
		}
		dec.Effect = event.Effect(effect)
		resp.Status = int(status)
		if len(cp.Unrecorded) == 0 {
			cp.Unrecorded = nil
		}
		if len(dec.Shadow) == 0 {
			dec.Shadow = nil
		}
		if len(req.Truncated) == 0 {
			req.Truncated = nil
		}
		e.Identity, e.Request, e.Decision, e.Response = &id, &req, &dec, &resp
		if e.Kind == event.KindCheckpoint {
			e.Checkpoint = &cp
		}
		if err := visit(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}
