// Package natstest starts a real, embedded NATS JetStream server for tests,
// in one call, shut down with the test. Fault tests can Shutdown and Restart
// it on the same port and store.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
