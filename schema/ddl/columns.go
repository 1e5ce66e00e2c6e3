package ddl

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// Column is one column of events_raw: its name and type as the migrations
// create it, whether the chain hash covers it, and how it reads and writes
// its value of a Row. Events is the one list of them; inserts, reads, the
// chain's canonical form and the schema check all derive from it.
type Column struct {
	Name string
	Type Type
	// Chain is the canonical form of the chain hash that first covered the
	// column (2 for rampart-chain-v2, 3 for v3, ...), 0 when the chain does
	// not: values derived from others (event_time, actor) and what the
	// collector adds (stream_seq, collected_at). Every field of an event is
	// covered, so the covered columns are exactly those read back into one.
	Chain int
	codec codec
	// getString is the codec's getter of a String column: the chain hash
	// writes most columns of every event, and a direct call spares it
	// the interface's (BENCHMARKS.md).
	getString func(*Row) string
}

// AppendRowBinary appends the value of c in r in RowBinary.
func (c *Column) AppendRowBinary(b []byte, r *Row) []byte {
	if c.getString != nil {
		return appendString(b, c.getString(r))
	}
	return c.codec.appendTo(b, r)
}

// Events are the columns of events_raw, in the chain's canonical order:
// the covered columns (Chain > 0) appear here in the order they are hashed,
// those of each form after all of the form before. A column added to the
// table is added here once, with its migration; TestEventsTableMatchesMigrations
// holds the two to each other on both engines.
var Events = []Column{
	strCol("event_id", 2, func(r *Row) string { return r.Event.ID }, func(r *Row, v string) { r.Event.ID = v }),
	strCol("kind", 2, func(r *Row) string { return string(r.Event.Kind) }, func(r *Row, v string) { r.Event.Kind = event.Kind(v) }),
	timeCol("event_time", func(r *Row) time.Time { return r.Event.Time.UTC().Truncate(time.Second) }, nil),
	u64Col("event_time_us", 2, func(r *Row) uint64 { return uint64(r.Event.Time.UnixMicro()) },
		func(r *Row, v uint64) { r.Event.Time = time.UnixMicro(int64(v)).UTC() }),
	strCol("tenant", 2, func(r *Row) string { return r.Event.Tenant }, func(r *Row, v string) { r.Event.Tenant = v }),
	strCol("instance", 2, func(r *Row) string { return r.Event.Instance }, func(r *Row, v string) { r.Event.Instance = v }),
	strCol("epoch", 2, func(r *Row) string { return r.Event.Epoch }, func(r *Row, v string) { r.Event.Epoch = v }),
	u64Col("seq", 2, func(r *Row) uint64 { return r.Event.Seq }, func(r *Row, v uint64) { r.Event.Seq = v }),
	strCol("prev_hash", 2, func(r *Row) string { return r.Event.Prev }, func(r *Row, v string) { r.Event.Prev = v }),
	strCol("request_id", 2, func(r *Row) string { return r.Event.RequestID }, func(r *Row, v string) { r.Event.RequestID = v }),
	strCol("traceparent", 2, func(r *Row) string { return r.Event.Trace.TraceParent }, func(r *Row, v string) { r.Event.Trace.TraceParent = v }),
	strCol("tracestate", 2, func(r *Row) string { return r.Event.Trace.TraceState }, func(r *Row, v string) { r.Event.Trace.TraceState = v }),

	strCol("subject", 2, func(r *Row) string { return r.id().Subject }, func(r *Row, v string) { r.setID().Subject = v }),
	strCol("issuer", 2, func(r *Row) string { return r.id().Issuer }, func(r *Row, v string) { r.setID().Issuer = v }),
	strCol("spiffe_id", 2, func(r *Row) string { return r.id().SPIFFEID }, func(r *Row, v string) { r.setID().SPIFFEID = v }),
	strsCol("chain_subjects", 2, func(r *Row) int { return len(r.id().Chain) }, func(r *Row, i int) string { return r.id().Chain[i].Subject }, first),
	strsCol("chain_issuers", 2, func(r *Row) int { return len(r.id().Chain) }, func(r *Row, i int) string { return r.id().Chain[i].Issuer },
		func(r *Row, v []string) error {
			return second("chain_subjects", "chain_issuers", r, v, func(r *Row, subs, iss []string) {
				chain := make([]event.Actor, len(subs))
				for i := range subs {
					chain[i] = event.Actor{Subject: subs[i], Issuer: iss[i]}
				}
				r.setID().Chain = chain
			})
		}),
	strCol("actor", 0, func(r *Row) string { return r.Event.Identity.CurrentActor() }, nil),
	strCol("session_id", 2, func(r *Row) string { return r.id().SessionID }, func(r *Row, v string) { r.setID().SessionID = v }),
	strCol("task_id", 2, func(r *Row) string { return r.id().TaskID }, func(r *Row, v string) { r.setID().TaskID = v }),

	strCol("method", 2, func(r *Row) string { return r.req().Method }, func(r *Row, v string) { r.setReq().Method = v }),
	strCol("host", 2, func(r *Row) string { return r.req().Host }, func(r *Row, v string) { r.setReq().Host = v }),
	strCol("path", 2, func(r *Row) string { return r.req().Path }, func(r *Row, v string) { r.setReq().Path = v }),
	strCol("query", 2, func(r *Row) string { return r.req().Query }, func(r *Row, v string) { r.setReq().Query = v }),
	strCol("resource", 2, func(r *Row) string { return r.req().Resource }, func(r *Row, v string) { r.setReq().Resource = v }),
	// Recorded headers as parallel arrays, names sorted.
	strsCol("header_names", 2, func(r *Row) int { return len(r.headerNames()) }, func(r *Row, i int) string { return r.headerNames()[i] }, first),
	strsCol("header_values", 2, func(r *Row) int { return len(r.headerNames()) }, func(r *Row, i int) string { return r.req().Headers[r.headerNames()[i]] },
		func(r *Row, v []string) error {
			return second("header_names", "header_values", r, v, func(r *Row, names, values []string) {
				h := make(map[string]string, len(names))
				for i, k := range names {
					h[k] = values[i]
				}
				r.setReq().Headers = h
			})
		}),
	strCol("rpc_method", 2, func(r *Row) string { return r.req().RPCMethod }, func(r *Row, v string) { r.setReq().RPCMethod = v }),
	strCol("tool", 2, func(r *Row) string { return r.req().Tool }, func(r *Row, v string) { r.setReq().Tool = v }),
	strCol("args_digest", 2, func(r *Row) string { return r.req().ArgsDigest }, func(r *Row, v string) { r.setReq().ArgsDigest = v }),
	strCol("args", 2, func(r *Row) string { return string(r.req().Args) }, func(r *Row, v string) {
		if v != "" {
			r.setReq().Args = json.RawMessage(v)
		}
	}),
	i64Col("body_bytes", 2, func(r *Row) int64 { return r.req().BodyBytes }, func(r *Row, v int64) { r.setReq().BodyBytes = v }),
	strCol("destination", 2, func(r *Row) string { return r.req().Destination }, func(r *Row, v string) { r.setReq().Destination = v }),
	strCol("data_class", 2, func(r *Row) string { return r.req().DataClass }, func(r *Row, v string) { r.setReq().DataClass = v }),

	strCol("effect", 2, func(r *Row) string { return string(r.dec().Effect) }, func(r *Row, v string) { r.setDec().Effect = event.Effect(v) }),
	strCol("policy_id", 2, func(r *Row) string { return r.dec().PolicyID }, func(r *Row, v string) { r.setDec().PolicyID = v }),
	strCol("rule_id", 2, func(r *Row) string { return r.dec().RuleID }, func(r *Row, v string) { r.setDec().RuleID = v }),
	strCol("policy_hash", 2, func(r *Row) string { return r.dec().PolicyHash }, func(r *Row, v string) { r.setDec().PolicyHash = v }),
	strCol("reason", 2, func(r *Row) string { return r.dec().Reason }, func(r *Row, v string) { r.setDec().Reason = v }),
	strCol("code", 2, func(r *Row) string { return r.dec().Code }, func(r *Row, v string) { r.setDec().Code = v }),
	i64Col("eval_ns", 2, func(r *Row) int64 { return r.dec().EvalNanos }, func(r *Row, v int64) { r.setDec().EvalNanos = v }),
	plainStrs("shadow_rules", 2, func(r *Row) []string { return r.dec().Shadow }, func(r *Row, v []string) { r.setDec().Shadow = v }),

	i32Col("status", 2, func(r *Row) int32 { return int32(r.resp().Status) }, func(r *Row, v int32) { r.setResp().Status = int(v) }),
	i64Col("duration_ns", 2, func(r *Row) int64 { return r.resp().DurationNs }, func(r *Row, v int64) { r.setResp().DurationNs = v }),
	i64Col("response_bytes", 2, func(r *Row) int64 { return r.resp().Bytes }, func(r *Row, v int64) { r.setResp().Bytes = v }),

	strCol("checkpoint_key_id", 2, func(r *Row) string { return r.cp().KeyID }, func(r *Row, v string) {
		if v != "" {
			r.setCP().KeyID = v
		}
	}),
	strCol("checkpoint_sig", 2, func(r *Row) string { return r.cp().Signature }, func(r *Row, v string) {
		if v != "" {
			r.setCP().Signature = v
		}
	}),
	u64sCol("checkpoint_unrecorded", 2, func(r *Row) []uint64 { return r.cp().Unrecorded }, func(r *Row, v []uint64) { r.setCP().Unrecorded = v }),

	// rampart-chain-v3.
	strCol("session_source", 3, func(r *Row) string { return r.id().SessionSource }, func(r *Row, v string) { r.setID().SessionSource = v }),
	strCol("task_source", 3, func(r *Row) string { return r.id().TaskSource }, func(r *Row, v string) { r.setID().TaskSource = v }),
	strCol("rpc_kind", 3, func(r *Row) string { return r.req().RPCKind }, func(r *Row, v string) { r.setReq().RPCKind = v }),
	strCol("prompt", 3, func(r *Row) string { return r.req().Prompt }, func(r *Row, v string) { r.setReq().Prompt = v }),
	plainStrs("truncated", 3, func(r *Row) []string { return r.req().Truncated }, func(r *Row, v []string) { r.setReq().Truncated = v }),
	strCol("response_outcome", 3, func(r *Row) string { return r.resp().Outcome }, func(r *Row, v string) { r.setResp().Outcome = v }),

	// rampart-chain-v4: alerts.
	strCol("alert_rule_id", 4, func(r *Row) string { return r.alert().RuleID }, func(r *Row, v string) {
		if v != "" {
			r.setAlert().RuleID = v
		}
	}),
	strCol("alert_title", 4, func(r *Row) string { return r.alert().Title }, func(r *Row, v string) {
		if v != "" {
			r.setAlert().Title = v
		}
	}),
	strCol("alert_severity", 4, func(r *Row) string { return string(r.alert().Severity) }, func(r *Row, v string) {
		if v != "" {
			r.setAlert().Severity = event.Severity(v)
		}
	}),
	plainStrs("alert_tags", 4, func(r *Row) []string { return r.alert().Tags }, func(r *Row, v []string) { r.setAlert().Tags = v }),
	strsCol("alert_group_fields", 4, func(r *Row) int { return len(r.alert().Group) }, func(r *Row, i int) string { return r.alert().Group[i].Field }, first),
	strsCol("alert_group_values", 4, func(r *Row) int { return len(r.alert().Group) }, func(r *Row, i int) string { return r.alert().Group[i].Value },
		func(r *Row, v []string) error {
			return second("alert_group_fields", "alert_group_values", r, v, func(r *Row, fields, values []string) {
				g := make([]event.GroupValue, len(fields))
				for i := range fields {
					g[i] = event.GroupValue{Field: fields[i], Value: values[i]}
				}
				r.setAlert().Group = g
			})
		}),
	u64Col("alert_first_us", 4, func(r *Row) uint64 { return micros(r.alert().First) }, func(r *Row, v uint64) {
		if v != 0 {
			r.setAlert().First = fromMicros(v)
		}
	}),
	u64Col("alert_last_us", 4, func(r *Row) uint64 { return micros(r.alert().Last) }, func(r *Row, v uint64) {
		if v != 0 {
			r.setAlert().Last = fromMicros(v)
		}
	}),
	u64Col("alert_count", 4, func(r *Row) uint64 { return uint64(r.alert().Count) }, func(r *Row, v uint64) {
		if v != 0 {
			r.setAlert().Count = int(v)
		}
	}),
	plainStrs("alert_evidence", 4, func(r *Row) []string { return r.alert().Evidence }, func(r *Row, v []string) { r.setAlert().Evidence = v }),

	// rampart-chain-v5: task credentials. decision_credential_jti is the
	// credential a decision put on the request; credential_* are a
	// credential event's own.
	strCol("decision_credential_jti", 5, func(r *Row) string { return r.dec().CredentialJTI }, func(r *Row, v string) { r.setDec().CredentialJTI = v }),
	strCol("credential_action", 5, func(r *Row) string { return string(r.cred().Action) }, func(r *Row, v string) {
		if v != "" {
			r.setCred().Action = event.CredentialAction(v)
		}
	}),
	strCol("credential_jti", 5, func(r *Row) string { return r.cred().JTI }, func(r *Row, v string) {
		if v != "" {
			r.setCred().JTI = v
		}
	}),
	strCol("credential_audience", 5, func(r *Row) string { return r.cred().Audience }, func(r *Row, v string) {
		if v != "" {
			r.setCred().Audience = v
		}
	}),
	plainStrs("credential_scope", 5, func(r *Row) []string { return r.cred().Scope }, func(r *Row, v []string) {
		if len(v) > 0 {
			r.setCred().Scope = v
		}
	}),
	strCol("credential_key_id", 5, func(r *Row) string { return r.cred().KeyID }, func(r *Row, v string) {
		if v != "" {
			r.setCred().KeyID = v
		}
	}),
	u64Col("credential_expires_us", 5, func(r *Row) uint64 { return micros(r.cred().Expires) }, func(r *Row, v uint64) {
		if v != 0 {
			r.setCred().Expires = fromMicros(v)
		}
	}),
	strCol("credential_reason", 5, func(r *Row) string { return r.cred().Reason }, func(r *Row, v string) {
		if v != "" {
			r.setCred().Reason = v
		}
	}),

	// rampart-chain-v6: what a verifying backend saw (kind
	// backend_request); its identity, request id and request are in the
	// columns above.
	strCol("backend_jti", 6, func(r *Row) string { return r.backend().JTI }, func(r *Row, v string) {
		if v != "" {
			r.setBackend().JTI = v
		}
	}),
	strCol("backend_audience", 6, func(r *Row) string { return r.backend().Audience }, func(r *Row, v string) {
		if v != "" {
			r.setBackend().Audience = v
		}
	}),
	strCol("backend_client", 6, func(r *Row) string { return r.backend().Client }, func(r *Row, v string) {
		if v != "" {
			r.setBackend().Client = v
		}
	}),
	i32Col("backend_status", 6, func(r *Row) int32 { return int32(r.backend().Status) }, func(r *Row, v int32) {
		if v != 0 {
			r.setBackend().Status = int(v)
		}
	}),
	strCol("backend_code", 6, func(r *Row) string { return r.backend().Code }, func(r *Row, v string) {
		if v != "" {
			r.setBackend().Code = v
		}
	}),

	// Added by the collector.
	strCol("agent_owner", 0, func(r *Row) string { return r.Agent.Owner }, func(r *Row, v string) { r.Agent.Owner = v }),
	strCol("agent_team", 0, func(r *Row) string { return r.Agent.Team }, func(r *Row, v string) { r.Agent.Team = v }),
	strCol("agent_purpose", 0, func(r *Row) string { return r.Agent.Purpose }, func(r *Row, v string) { r.Agent.Purpose = v }),
	strCol("agent_risk_tier", 0, func(r *Row) string { return r.Agent.RiskTier }, func(r *Row, v string) { r.Agent.RiskTier = v }),
	strCol("agent_environment", 0, func(r *Row) string { return r.Agent.Environment }, func(r *Row, v string) { r.Agent.Environment = v }),
	boolCol("agent_registered", func(r *Row) bool { return r.Agent.Registered }, func(r *Row, v bool) { r.Agent.Registered = v }),
	strCol("agent_inventory", 0, func(r *Row) string { return r.Agent.Inventory }, func(r *Row, v string) { r.Agent.Inventory = v }),
	u64Col("stream_seq", 0, func(r *Row) uint64 { return r.StreamSeq }, func(r *Row, v uint64) { r.StreamSeq = v }),
	timeCol("collected_at", func(r *Row) time.Time { return r.CollectedAt.UTC().Truncate(time.Second) }, func(r *Row, v time.Time) { r.CollectedAt = v }),
}

// EventColumns are the names of Events, in order: what inserts name
// (explicitly, as ClickHouse 18.16 needs), in the order of EventRow.
var EventColumns = Names(Events)

// EventFields are the columns that hold the event itself (those the chain
// covers), in canonical order: what a read selects to rebuild events.
var EventFields = Covered(Events)

// Names are the names of cols, in order.
func Names(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// Covered are the columns of cols the chain hash covers, in order.
func Covered(cols []Column) []Column {
	var out []Column
	for _, c := range cols {
		if c.Chain > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Lookup returns the column of Events named name.
func Lookup(name string) (Column, bool) {
	for _, c := range Events {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// EventRow flattens e into values for EventColumns, as an insert over the
// native protocol takes them. streamSeq is the JetStream sequence the
// event was read at.
func EventRow(e *event.Event, streamSeq uint64, collectedAt time.Time) []any {
	return Values(Events, &Row{Event: e, StreamSeq: streamSeq, CollectedAt: collectedAt})
}

// Values are r's values of cols, as an insert over the native protocol
// takes them.
func Values(cols []Column, r *Row) []any {
	r.reset()
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c.codec.value(r)
	}
	return out
}

// AppendRowBinary appends r's row of cols in RowBinary.
func AppendRowBinary(b []byte, cols []Column, r *Row) []byte {
	r.reset()
	for _, c := range cols {
		b = c.codec.appendTo(b, r)
	}
	return b
}

// micros is t in microseconds since the epoch, 0 for the zero time (an
// absent value, which must be all zero bytes in RowBinary).
func micros(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMicro())
}

func fromMicros(v uint64) time.Time { return time.UnixMicro(int64(v)).UTC() }

// sortedKeys are m's keys, sorted, in buf's storage when they fit.
func sortedKeys(m map[string]string, buf []string) []string {
	if len(m) == 0 {
		return nil
	}
	keys := buf
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
