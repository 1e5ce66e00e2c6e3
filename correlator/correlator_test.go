package correlator_test

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

type publisher struct {
	js  jetstream.JetStream
	ids event.IDSource
	seq uint64
	// spoofAs, when set, publishes on that tenant's subject whatever the event says.
	spoofAs string
}

func (p *publisher) send(t testing.TB, tenant, session string, kind event.Kind, effect event.Effect, chain ...string) {
	t.Helper()
	p.seq++
	id := &event.Identity{Subject: "user:alice", SessionID: session, TaskID: "task-9"}
	for _, a := range chain {
		id.Chain = append(id.Chain, event.Actor{Subject: a})
	}
	e := &event.Event{V: event.Version, ID: p.ids.New(time.Now()), Kind: kind, Time: time.Now(), Tenant: tenant,
		Instance: "enf", Seq: p.seq, RequestID: fmt.Sprint(p.seq), Identity: id}
	switch kind {
	case event.KindRequest:
		e.Request = &event.Request{Method: "POST", Tool: "search"}
	case event.KindDecision:
		e.Decision = &event.Decision{Effect: effect, RuleID: "r"}
	case event.KindResponse:
		e.Response = &event.Response{Status: 200}
	}
	data, _ := event.Encode(e)
	on := tenant
	if p.spoofAs != "" {
		on = p.spoofAs
	}
	subj, _ := subject.For(on, string(kind))
	if _, err := p.js.Publish(context.Background(), subj, data, jetstream.WithMsgID(e.ID)); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, url string, ch *chstore.Client, addr string) func() {
	cfg := correlator.Defaults()
	cfg.NATSURL = stream.URLs(url)
	cfg.ClickHouse.Addr = chstore.AddrList(addr)
	cfg.ClickHouse.Database = ch.Database()
	cfg.BatchWait = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	c, err := correlator.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	stop := func() { cancel(); <-done; c.Close() }
	t.Cleanup(stop)
	return stop
}

func waitRows(t *testing.T, ch *chstore.Client, q string, want [][]string) {
	t.Helper()
	poll.Until(t, 30*time.Second, func() error {
		got, err := ch.Query(context.Background(), q)
		if err != nil || !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s\n got %q (%v)\nwant %q", q, got, err, want)
		}
		return nil
	})
}

func TestSessionsSurviveRestartWithoutDoubleCounting(t *testing.T) {
	srv := natstest.Run(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(context.Background(), js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	addr, _ := chtest.Server(t)
	ch := chtest.Open(t, addr)
	p := &publisher{js: js}

	p.send(t, "acme", "s1", event.KindRequest, "", "agent:planner")
	p.send(t, "acme", "s1", event.KindDecision, event.EffectAllow, "agent:planner")
	p.send(t, "acme", "s1", event.KindResponse, "", "agent:planner")
	p.send(t, "acme", "s1", event.KindRequest, "", "agent:planner", "agent:sub")
	p.send(t, "acme", "s1", event.KindDecision, event.EffectDeny, "agent:planner", "agent:sub")
	p.send(t, "globex", "s1", event.KindRequest, "") // same id, other tenant: another session
	p.send(t, "globex", "s1", event.KindDecision, event.EffectDeny)
	// Events under another tenant's subject are the collector's to
	// dead-letter; counted here they would inflate globex's session.
	p.spoofAs = "acme"
	p.send(t, "globex", "s1", event.KindRequest, "")
	p.send(t, "globex", "s1", event.KindDecision, event.EffectAllow)
	p.spoofAs = ""

	q := "SELECT tenant, session_id, principal, agents, chain, tasks, requests, allowed, denied, responses FROM " +
		ch.Database() + ".sessions ORDER BY tenant"
	stop := start(t, srv.URL(), ch, addr)
	waitRows(t, ch, q, [][]string{
		{"acme", "s1", "user:alice", "['agent:planner','agent:sub']", "['user:alice','agent:planner','agent:sub']", "['task-9']", "2", "1", "1", "1"},
		{"globex", "s1", "user:alice", "['user:alice']", "['user:alice']", "['task-9']", "1", "0", "1", "0"},
	})
	stop()

	// A new correlator resumes from ClickHouse and from its durable consumer.
	p.send(t, "acme", "s1", event.KindResponse, "", "agent:planner", "agent:sub")
	start(t, srv.URL(), ch, addr)
	waitRows(t, ch, q, [][]string{
		{"acme", "s1", "user:alice", "['agent:planner','agent:sub']", "['user:alice','agent:planner','agent:sub']", "['task-9']", "2", "1", "1", "2"},
		{"globex", "s1", "user:alice", "['user:alice']", "['user:alice']", "['task-9']", "1", "0", "1", "0"},
	})
}
