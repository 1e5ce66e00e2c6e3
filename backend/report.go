package backend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KindBackendRequest is the event kind of a backend's report
// (schema/event.KindBackendRequest).
const KindBackendRequest = "backend_request"

// InstancePrefix begins the instance of every backend's reports, so no
// consumer mistakes one for an enforcer's or a correlator's.
const InstancePrefix = "backend:"

// Event is the wire form of a backend_request event: the fields of the
// v1 event model (schema/event.Event) a backend fills, and nothing else.
type Event struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant"`
	Instance string    `json:"instance"`
	// Seq and Epoch: each report is a chain of its own (Epoch its id, Seq
	// 1): a tool server holds no key the record trusts to link them.
	Seq       uint64         `json:"seq"`
	Epoch     string         `json:"epoch,omitempty"`
	RequestID string         `json:"request_id"`
	Identity  *EventIdentity `json:"identity,omitempty"`
	Request   *EventRequest  `json:"request,omitempty"`
	Backend   *EventBackend  `json:"backend"`
}

// EventIdentity is what the verified credential names, and the peer's
// SPIFFE id over mTLS.
type EventIdentity struct {
	Subject   string  `json:"sub,omitempty"`
	Issuer    string  `json:"iss,omitempty"`
	SPIFFEID  string  `json:"spiffe_id,omitempty"`
	Chain     []Actor `json:"chain,omitempty"`
	SessionID string  `json:"session_id,omitempty"`
	TaskID    string  `json:"task_id,omitempty"`
}

// EventRequest is what was asked: never the query string, which may hold
// a token.
type EventRequest struct {
	Method string `json:"method"`
	Host   string `json:"host"`
	Path   string `json:"path"`
}

// EventBackend is what the backend saw and answered
// (schema/event.Backend).
type EventBackend struct {
	JTI      string `json:"jti,omitempty"`
	Audience string `json:"audience"`
	Client   string `json:"client"`
	Status   int    `json:"status"`
	Code     string `json:"code,omitempty"`
}

// SubjectPrefix is the subject prefix of event model v1.
const SubjectPrefix = "rampart.v1."

// maxSubjectToken bounds an escaped subject token (schema/subject).
const maxSubjectToken = 192

// Subject is the subject a report of tenant is published on:
// rampart.v1.<tenant>.backend_request, the tenant escaped as
// schema/subject.EscapeToken does. ok is false when the escaped tenant is
// too long to name a subject.
func Subject(tenant string) (string, bool) {
	t := "~"
	if tenant != "" {
		var b strings.Builder
		const hex = "0123456789ABCDEF"
		for i := 0; i < len(tenant); i++ {
			c := tenant[i]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				b.WriteByte(c)
			} else {
				b.WriteByte('~')
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			}
			if b.Len() > maxSubjectToken {
				return "", false
			}
		}
		t = b.String()
	}
	return SubjectPrefix + t + "." + KindBackendRequest, true
}

// Stats are the reporter's counters since the Verifier started.
type Stats struct {
	// Reported is how many reports JetStream acknowledged.
	Reported uint64
	// Dropped is how many reports were never made: the buffer was full,
	// or the Verifier closed before JetStream took them.
	Dropped uint64
	// Pending is how many wait in the buffer now.
	Pending int
	// Refused counts requests refused by the middleware, by any code.
	Refused uint64
}

// message is one encoded report.
type message struct {
	subject, id string
	data        []byte
}

// reporter publishes reports from a bounded buffer, in the background, so
// serving never waits on JetStream: a full buffer drops the report and
// counts it.
type reporter struct {
	js      jetstream.JetStream // nil: nothing is reported, every report dropped
	cfg     ReportConfig
	log     *slog.Logger
	queue   chan message
	ids     idSource
	stopped chan struct{}

	reported, dropped atomic.Uint64
}

func newReporter(js jetstream.JetStream, cfg ReportConfig, log *slog.Logger) *reporter {
	return &reporter{js: js, cfg: cfg, log: log, queue: make(chan message, cfg.Buffer), stopped: make(chan struct{})}
}

// healthy reports whether a report made now can be expected to reach
// JetStream.
func (r *reporter) healthy() bool {
	return r.js != nil && r.js.Conn().Status() == nats.CONNECTED && len(r.queue) < cap(r.queue)
}

// report encodes e and queues it, without waiting.
func (r *reporter) report(e *Event) {
	e.V, e.Kind, e.Seq = 1, KindBackendRequest, 1
	e.ID = r.ids.next(e.Time)
	subj, ok := Subject(e.Tenant)
	data, err := json.Marshal(e)
	if r.js == nil || !ok || err != nil {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- message{subject: subj, id: e.ID, data: data}:
	default:
		r.dropped.Add(1)
	}
}

// run publishes queued reports until ctx ends, each retried with its id
// (Nats-Msg-Id, so JetStream stores it once) until JetStream takes it.
func (r *reporter) run(ctx context.Context) {
	defer close(r.stopped)
	if r.js == nil {
		return
	}
	backoff := time.NewTimer(0)
	<-backoff.C
	for {
		var m message
		select {
		case <-ctx.Done():
			return
		case m = <-r.queue:
		}
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
			_, err := r.js.PublishMsg(pctx, &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{nats.MsgIdHdr: {m.id}}})
			cancel()
			if err == nil {
				r.reported.Add(1)
				break
			}
			if ctx.Err() != nil {
				r.dropped.Add(1)
				return
			}
			r.log.Debug("backend report not taken; retrying", "id", m.id, "err", err)
			backoff.Reset(wait)
			select {
			case <-ctx.Done():
				r.dropped.Add(1)
				return
			case <-backoff.C:
			}
		}
	}
}

// drain counts what is left in the queue as dropped, once run returned.
func (r *reporter) drain() {
	for {
		select {
		case <-r.queue:
			r.dropped.Add(1)
		default:
			return
		}
	}
}

// idSource makes ULIDs, strictly increasing within one source
// (schema/event.IDSource).
type idSource struct {
	mu     sync.Mutex
	lastMS uint64
	hi     uint16
	lo     uint64
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func (s *idSource) next(t time.Time) string {
	ms := uint64(t.UnixMilli())
	s.mu.Lock()
	if ms <= s.lastMS {
		ms = s.lastMS
		s.lo++
		if s.lo == 0 {
			s.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:])
		s.hi, s.lo, s.lastMS = binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint64(b[2:]), ms
	}
	hi16, lo := s.hi, s.lo
	s.mu.Unlock()
	hi := ms<<16 | uint64(hi16)
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

type atomicCounter struct{ n atomic.Uint64 }

func (c *atomicCounter) add()         { c.n.Add(1) }
func (c *atomicCounter) load() uint64 { return c.n.Load() }
