package ddl

import (
	"slices"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// EventColumns are the columns of events_raw that writers fill, in the order
// of EventRow. Inserts name them explicitly, which ClickHouse 18.16 needs.
var EventColumns = []string{
	"event_id", "kind", "event_time", "event_time_us", "tenant", "instance", "seq", "epoch", "prev_hash", "request_id",
	"traceparent", "tracestate",
	"subject", "issuer", "spiffe_id", "chain_subjects", "chain_issuers", "actor", "session_id", "task_id",
	"method", "host", "path", "query", "resource", "header_names", "header_values", "rpc_method", "tool", "args_digest", "args", "body_bytes", "destination", "data_class",
	"effect", "policy_id", "rule_id", "policy_hash", "reason", "code", "eval_ns", "shadow_rules",
	"status", "duration_ns", "response_bytes",
	"checkpoint_key_id", "checkpoint_sig", "checkpoint_unrecorded",
	"session_source", "task_source", "rpc_kind", "prompt", "truncated", "response_outcome",
	"stream_seq", "collected_at",
}

// EventRow flattens e into values for EventColumns. streamSeq is the
// JetStream sequence the event was read at.
func EventRow(e *event.Event, streamSeq uint64, collectedAt time.Time) []any {
	var (
		id                          event.Identity
		req                         event.Request
		dec                         event.Decision
		resp                        event.Response
		cp                          event.Checkpoint
		chainSubjects, chainIssuers = []string{}, []string{}
	)
	if e.Identity != nil {
		id = *e.Identity
		for _, a := range id.Chain {
			chainSubjects = append(chainSubjects, a.Subject)
			chainIssuers = append(chainIssuers, a.Issuer)
		}
	}
	if e.Request != nil {
		req = *e.Request
	}
	if e.Decision != nil {
		dec = *e.Decision
	}
	if e.Response != nil {
		resp = *e.Response
	}
	if e.Checkpoint != nil {
		cp = *e.Checkpoint
	}
	headerNames, headerValues := []string{}, []string{}
	for k := range req.Headers {
		headerNames = append(headerNames, k)
	}
	slices.Sort(headerNames)
	for _, k := range headerNames {
		headerValues = append(headerValues, req.Headers[k])
	}
	shadow := dec.Shadow
	if shadow == nil {
		shadow = []string{}
	}
	unrecorded := cp.Unrecorded
	if unrecorded == nil {
		unrecorded = []uint64{}
	}
	truncated := req.Truncated
	if truncated == nil {
		truncated = []string{}
	}
	t := e.Time.UTC()
	return []any{
		e.ID, string(e.Kind), t.Truncate(time.Second), uint64(t.UnixMicro()), e.Tenant, e.Instance, e.Seq, e.Epoch, e.Prev, e.RequestID,
		e.Trace.TraceParent, e.Trace.TraceState,
		id.Subject, id.Issuer, id.SPIFFEID, chainSubjects, chainIssuers, e.Identity.CurrentActor(), id.SessionID, id.TaskID,
		req.Method, req.Host, req.Path, req.Query, req.Resource, headerNames, headerValues, req.RPCMethod, req.Tool, req.ArgsDigest, string(req.Args), req.BodyBytes, req.Destination, req.DataClass,
		string(dec.Effect), dec.PolicyID, dec.RuleID, dec.PolicyHash, dec.Reason, dec.Code, dec.EvalNanos, shadow,
		int32(resp.Status), resp.DurationNs, resp.Bytes,
		cp.KeyID, cp.Signature, unrecorded,
		id.SessionSource, id.TaskSource, req.RPCKind, req.Prompt, truncated, resp.Outcome,
		streamSeq, collectedAt.UTC().Truncate(time.Second),
	}
}
