// Package natstest starts a real, embedded NATS JetStream server for tests,
// in one call, shut down with the test. Fault tests can Shutdown and Restart
// it on the same port and store.
package natstest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// Server is a running JetStream server on loopback.
type Server struct {
	*server.Server
	t    testing.TB
	opts server.Options
}

// Run starts JetStream on a free loopback port with its store in a
// temporary directory.
func Run(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	s.start()
	// A restart must come back where clients expect it.
	s.opts.Port = s.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// JetStream connects a JetStream client to the server, closed with the test.
func (s *Server) JetStream() jetstream.JetStream {
	s.t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		s.t.Fatalf("natstest: connect: %v", err)
	}
	s.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		s.t.Fatalf("natstest: jetstream: %v", err)
	}
	return js
}

// Restart stops the server and starts it again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	s.start()
}

func (s *Server) start() {
	s.t.Helper()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatalf("natstest: server not ready")
	}
	s.Server = srv
}

// ReadEvents reads Rampart's events stream at url from its start, only
// the subjects filter names (all when none), a fetch at a time, and hands
// each fetch's decoded events to more until more returns false. It
// returns true then, false when timeout passes first. A message that does
// not decode fails the test: the record must always be readable.
func ReadEvents(t testing.TB, url string, timeout time.Duration, more func(batch []*event.Event) bool, filter ...string) bool {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream.Events, jetstream.OrderedConsumerConfig{FilterSubjects: filter})
	if err != nil {
		t.Fatalf("natstest: consumer: %v", err)
	}
	for {
		fetched, err := c.Fetch(500, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatalf("natstest: fetch: %v", err)
		}
		var batch []*event.Event
		for m := range fetched.Messages() {
			events, err := event.DecodeMessage(m.Data())
			if err != nil {
				t.Fatalf("natstest: undecodable message on %s: %v", m.Subject(), err)
			}
			batch = append(batch, events...)
		}
		if !more(batch) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// AllEvents returns every event in the stream at url so far (of the
// subjects filter names): it reads until a fetch comes back empty.
func AllEvents(t testing.TB, url string, filter ...string) []*event.Event {
	t.Helper()
	var out []*event.Event
	ReadEvents(t, url, 30*time.Second, func(batch []*event.Event) bool {
		out = append(out, batch...)
		return len(batch) > 0
	}, filter...)
	return out
}
