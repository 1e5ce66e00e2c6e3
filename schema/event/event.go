package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the major version of the event model this package encodes.
const Version = 1

// Kind names what happened at the boundary.
type Kind string

// Kinds of v1. More may be added (alert, checkpoint, ...) without a new version.
const (
	KindRequest  Kind = "request"  // a request arrived and its caller was (or was not) identified
	KindDecision Kind = "decision" // the policy decided on that request
	KindResponse Kind = "response" // the backend answered a forwarded request
	// KindCheckpoint is a signed statement by an enforcer instance of the
	// head of its event chain (see package chain).
	KindCheckpoint Kind = "checkpoint"
	// KindToolSchema records a change in a tool's argument schema seen in a
	// backend's tools/list answer: Request.Tool names the tool, Decision.Code
	// the change ("schema_added", "schema_changed", "schema_removed") and
	// Decision.Reason the old and new hashes and which one is pinned.
	KindToolSchema Kind = "tool_schema"
	// KindPolicy records a policy bundle change at an enforcer: a reload
	// (Decision carries the new policy id and hash) or a failed one
	// (Decision.Code "policy_reload_failed", the old policy still deciding).
	KindPolicy Kind = "policy"
	// KindServerRequest records a request the backend sent the client in
	// an SSE stream (sampling, elicitation, roots, ping): Request.RPCMethod
	// names it, and RequestID is the exchange whose stream carried it.
	// A server asking an agent's client for a model completion or for the
	// user's input is an act of its own.
	KindServerRequest Kind = "server_request"
	// KindAlert is a detection rule's finding, published by a correlator
	// instance on rampart.v1.<tenant>.alert: Alert names the rule, the
	// group it matched and the events that are its evidence. Its ID is
	// derived from the rule, the group and the first evidence event, so
	// the same finding made twice is one alert.
	KindAlert Kind = "alert"
	// KindCredential records a downstream credential the enforcer minted
	// for a task (Credential.Action "issued") or revoked ("revoked"):
	// Identity names the principal, task and session it was minted for,
	// RequestID the exchange that caused it.
	KindCredential Kind = "credential"
	// KindBackendRequest records a request a tool server wrapped in
	// Rampart's backend middleware served or refused, as the backend saw
	// it: RequestID is the enforcer's X-Rampart-Request-Id it carried (empty
	// when none: the call did not come through an enforcer), Identity what
	// the verified credential names (and the peer's SPIFFE id over mTLS),
	// Request its method, host and path, Backend the credential's jti, the
	// peer's address and the answer. Instance begins "backend:", Seq is 1
	// and Epoch empty: a tool server holds no key the record trusts, so its
	// reports are no chain; the detections, not `rampart verify`, hold what
	// it says to what the enforcer decided.
	KindBackendRequest Kind = "backend_request"
)

// Valid reports whether k is a kind this version knows.
func (k Kind) Valid() bool {
	switch k {
	case KindRequest, KindDecision, KindResponse, KindCheckpoint, KindPolicy, KindToolSchema, KindServerRequest, KindAlert, KindCredential, KindBackendRequest:
		return true
	}
	return false
}

// Effect is the outcome of a policy decision.
type Effect string

// Effects a decision can carry.
const (
	EffectAllow Effect = "allow"
	EffectDeny  Effect = "deny"
)

// Event is the v1 envelope. Request, decision and response events for one
// HTTP exchange share RequestID and all carry the request's summary, so any
// one of them says what was asked; Seq is dense per Instance so gaps show.
type Event struct {
	V        int       `json:"v"`
	ID       string    `json:"id"` // ULID: unique and sortable by time
	Kind     Kind      `json:"kind"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant"`   // empty when the caller could not be identified
	Instance string    `json:"instance"` // the enforcer instance that saw the request
	Seq      uint64    `json:"seq"`      // per-instance sequence number, from 1
	// Epoch names one run of an instance: Seq restarts at 1 in each.
	Epoch string `json:"epoch,omitempty"`
	// Prev is the chain hash of the instance's previous event in this epoch
	// ("sha256:<hex>"), empty for the first: editing, deleting, reordering
	// or splicing stored events breaks the chain.
	Prev      string `json:"prev,omitempty"`
	RequestID string `json:"request_id"`
	Trace     Trace  `json:"trace,omitzero"`

	Identity   *Identity   `json:"identity,omitempty"`
	Request    *Request    `json:"request,omitempty"`
	Decision   *Decision   `json:"decision,omitempty"`
	Response   *Response   `json:"response,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Alert      *Alert      `json:"alert,omitempty"`
	Credential *Credential `json:"credential,omitempty"`
	Backend    *Backend    `json:"backend,omitempty"`
}

// Backend is what a verifying backend saw of one request: the credential
// it presented, where it came from, and what the backend answered.
type Backend struct {
	// JTI is the jti of the Rampart credential the request presented,
	// once its signature verified (revoked or expired ones too); empty
	// when it presented none that verified.
	JTI string `json:"jti,omitempty"`
	// Audience is the backend's own audience, which credentials must name.
	Audience string `json:"audience"`
	// Client is the peer's address as the backend's listener saw it.
	Client string `json:"client"`
	// Status is the HTTP status the request was answered with.
	Status int `json:"status"`
	// Code is the stable code of a refusal by the middleware
	// (missing_credential, invalid_credential, credential_revoked, ...),
	// empty when the request reached the tool server's handler.
	Code string `json:"code,omitempty"`
}

// Credential is a downstream credential's life event: which token (its
// jti), for which audience and scope, signed with which key, valid until
// when, and why it was issued or revoked. The task and principal are the
// event's Identity.
type Credential struct {
	Action   CredentialAction `json:"action"`
	JTI      string           `json:"jti"`
	Audience string           `json:"audience"`
	Scope    []string         `json:"scope,omitempty"`
	KeyID    string           `json:"key_id,omitempty"`
	// Expires is the token's exp.
	Expires time.Time `json:"expires"`
	Reason  string    `json:"reason,omitempty"`
}

// CredentialAction is what happened to a credential.
type CredentialAction string

// Credential actions.
const (
	CredentialIssued  CredentialAction = "issued"
	CredentialRevoked CredentialAction = "revoked"
)

// Valid reports whether a is one of the actions.
func (a CredentialAction) Valid() bool { return a == CredentialIssued || a == CredentialRevoked }

// Alert is what a detection rule found: which rule, in which group of
// events, and which events, in stream order, are the evidence.
type Alert struct {
	RuleID   string   `json:"rule_id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	// Tags name the threat catalogues' entries the rule stands for
	// (OWASP Agentic and LLM Top 10, MAESTRO ids).
	Tags []string `json:"tags,omitempty"`
	// Group holds the rule's group_by fields and their values, in the
	// rule's order; the tenant is the event's own.
	Group []GroupValue `json:"group,omitempty"`
	// First and Last are the times of the first and last evidence event.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Count is how many events matched; Evidence lists their event ids in
	// stream order, at most the rule's evidence bound, the first always.
	Count    int      `json:"count"`
	Evidence []string `json:"evidence"`
}

// GroupValue is one group_by field of an alert and its value.
type GroupValue struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Severity ranks alerts, as Sigma does.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Valid reports whether s is one of the severities.
func (s Severity) Valid() bool {
	switch s {
	case SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}

// Checkpoint is an instance's signed statement that its chain, up to this
// event, hashes to this event's Prev. The signature covers the checkpoint
// event's own chain hash computed with Signature empty.
type Checkpoint struct {
	KeyID     string `json:"key_id"`
	Signature string `json:"sig"` // base64 (standard, padded) Ed25519
	// Unrecorded lists sequence numbers since the previous checkpoint whose
	// publish failed: the enforcer refused those requests, and their events
	// may be absent from the record without tampering.
	Unrecorded []uint64 `json:"unrecorded,omitempty"`
}

// Trace is the W3C trace context of the request.
type Trace struct {
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// Identity is who made the request, as verified by the enforcer.
type Identity struct {
	Subject  string `json:"sub,omitempty"`
	Issuer   string `json:"iss,omitempty"`
	SPIFFEID string `json:"spiffe_id,omitempty"`
	// Chain is the delegation chain from nested RFC 8693 "act" claims: the
	// actors, earliest first, the current actor (the outermost "act") last.
	// The principal is Subject, not part of Chain.
	Chain []Actor `json:"chain,omitempty"`
	// SessionID and TaskID are bound to the caller: from the verified
	// token, or ids the client sent that no other principal holds at the
	// enforcer. SessionSource and TaskSource say which: "token", "server"
	// (a session id the backend issued to this caller through the
	// enforcer) or "client" (first presented by this caller).
	SessionID     string `json:"session_id,omitempty"`
	TaskID        string `json:"task_id,omitempty"`
	SessionSource string `json:"session_source,omitempty"`
	TaskSource    string `json:"task_source,omitempty"`
}

// Actor is one link of a delegation chain.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
}

// CurrentActor returns the party acting now: the last actor of the chain
// (the token's outermost "act"), or the subject when nothing was delegated.
func (id *Identity) CurrentActor() string {
	if id == nil {
		return ""
	}
	if n := len(id.Chain); n > 0 {
		return id.Chain[n-1].Subject
	}
	return id.Subject
}

// Request describes what was asked of the backend.
type Request struct {
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"` // the raw query string
	// Resource is the URI of an MCP resources/read.
	Resource string `json:"resource,omitempty"`
	// Headers are the request headers the enforcer is configured to
	// record (names in lower case; repeated headers joined with ", ").
	Headers map[string]string `json:"headers,omitempty"`
	// RPCMethod is the JSON-RPC method of an MCP call (tools/call, ...).
	RPCMethod string `json:"rpc_method,omitempty"`
	// RPCKind is what the JSON-RPC message is: "request", "notification"
	// or "response" (a client's answer to a server-initiated request);
	// empty for plain HTTP.
	RPCKind string `json:"rpc_kind,omitempty"`
	// Tool is the name of a tools/call, and only of one.
	Tool string `json:"tool,omitempty"`
	// Prompt is the name of a prompts/get.
	Prompt string `json:"prompt,omitempty"`
	// ArgsDigest is "sha256:<hex>" of the raw tool arguments; Args is kept
	// only when policy allows recording them.
	ArgsDigest string          `json:"args_digest,omitempty"`
	Args       json.RawMessage `json:"args,omitempty"`
	BodyBytes  int64           `json:"body_bytes,omitempty"`
	// Destination and DataClass are where the call goes and what data it
	// carries, from the enforcer's destination map.
	Destination string `json:"destination,omitempty"`
	DataClass   string `json:"data_class,omitempty"`
	// Truncated names the fields above recorded shortened (or, for args,
	// dropped: ArgsDigest still covers them whole) because the client sent
	// more than a record may hold.
	Truncated []string `json:"truncated,omitempty"`
}

// Decision is what the policy decided and why.
type Decision struct {
	Effect     Effect `json:"effect"`
	PolicyID   string `json:"policy_id"`
	RuleID     string `json:"rule_id"`
	PolicyHash string `json:"policy_hash"`
	Reason     string `json:"reason,omitempty"`
	// Code is the stable error code when the request was refused before or
	// outside policy (for example "token_invalid").
	Code      string `json:"code,omitempty"`
	EvalNanos int64  `json:"eval_ns"`
	// Shadow lists audit-only rules that applied: what would have decided.
	Shadow []string `json:"shadow,omitempty"`
	// CredentialJTI is the jti of the credential the enforcer put on the
	// allowed request in place of the caller's own (freshly minted or
	// cached): every decision that carried one credential names it.
	CredentialJTI string `json:"credential_jti,omitempty"`
}

// Response is what the backend answered.
type Response struct {
	Status     int   `json:"status"`
	DurationNs int64 `json:"duration_ns"`
	Bytes      int64 `json:"bytes,omitempty"`
	// Outcome is how the exchange ended: "completed", "client_gone" (the
	// client stopped reading or hung up), "upstream_aborted" (the backend
	// broke off its answer), "upstream_unavailable" (it gave none),
	// "answer_withheld" (the enforcer kept it from the client) or
	// "stream_refused" (the enforcer cut off a stream it could not read as
	// clients do).
	Outcome string `json:"outcome,omitempty"`
}

// Outcomes of a forwarded exchange.
const (
	OutcomeCompleted           = "completed"
	OutcomeClientGone          = "client_gone"
	OutcomeUpstreamAborted     = "upstream_aborted"
	OutcomeUpstreamUnavailable = "upstream_unavailable"
	OutcomeAnswerWithheld      = "answer_withheld"
	OutcomeStreamRefused       = "stream_refused"
)

// Errors returned by Decode. They are stable: the collector routes on them.
var (
	ErrMalformed          = errors.New("event: malformed")
	ErrUnsupportedVersion = errors.New("event: unsupported version")
	ErrInvalid            = errors.New("event: invalid")
)

// Decode parses and validates one v1 event. Any other version is
// ErrUnsupportedVersion, whatever its fields: consumers route by version.
func Decode(data []byte) (*Event, error) {
	var e Event
	if !decodeFast(data, &e) {
		e = Event{}
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Validate checks the fields every consumer depends on.
func (e *Event) Validate() error {
	switch {
	case e.V != Version:
		return fmt.Errorf("%w: version %d", ErrUnsupportedVersion, e.V)
	case e.ID == "":
		return fmt.Errorf("%w: missing id", ErrInvalid)
	case !e.Kind.Valid():
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	case e.Time.IsZero():
		return fmt.Errorf("%w: missing time", ErrInvalid)
	case e.Instance == "":
		return fmt.Errorf("%w: missing instance", ErrInvalid)
	case e.Seq == 0:
		return fmt.Errorf("%w: missing seq", ErrInvalid)
	case e.Kind == KindDecision && e.Decision == nil:
		return fmt.Errorf("%w: decision event without decision", ErrInvalid)
	case e.Kind == KindRequest && e.Request == nil:
		return fmt.Errorf("%w: request event without request", ErrInvalid)
	case e.Kind == KindResponse && e.Response == nil:
		return fmt.Errorf("%w: response event without response", ErrInvalid)
	case e.Kind == KindPolicy && e.Decision == nil:
		return fmt.Errorf("%w: policy event without decision", ErrInvalid)
	case e.Kind == KindCheckpoint && e.Checkpoint == nil:
		return fmt.Errorf("%w: checkpoint event without checkpoint", ErrInvalid)
	case e.Kind == KindAlert && e.Alert == nil:
		return fmt.Errorf("%w: alert event without alert", ErrInvalid)
	case e.Alert != nil && !e.Alert.Severity.Valid():
		return fmt.Errorf("%w: alert severity %q", ErrInvalid, e.Alert.Severity)
	case e.Kind == KindCredential && e.Credential == nil:
		return fmt.Errorf("%w: credential event without credential", ErrInvalid)
	case e.Credential != nil && !e.Credential.Action.Valid():
		return fmt.Errorf("%w: credential action %q", ErrInvalid, e.Credential.Action)
	case e.Credential != nil && e.Credential.JTI == "":
		return fmt.Errorf("%w: credential without jti", ErrInvalid)
	case e.Kind == KindBackendRequest && e.Backend == nil:
		return fmt.Errorf("%w: backend_request event without backend", ErrInvalid)
	case e.Backend != nil && (e.Backend.Status < 100 || e.Backend.Status > 599):
		return fmt.Errorf("%w: backend status %d", ErrInvalid, e.Backend.Status)
	}
	return nil
}
