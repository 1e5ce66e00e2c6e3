// Package natsserver runs the embedded, single-node NATS JetStream server of
// `rampart run` and `rampart demo`. Production runs a clustered NATS and
// points components at it instead.
package natsserver

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures the embedded server.
type Config struct {
	// Listen is host:port for clients; port 0 picks a free one.
	Listen string `yaml:"listen"`
	// StoreDir holds JetStream's files; events survive restarts there.
	StoreDir string `yaml:"store_dir"`
	// SyncAlways makes JetStream fsync every write before acking it. Off,
	// an ack means the event is in the OS page cache and fsynced within the
	// server's sync interval (2 minutes by default): it survives a process
	// crash, not a power loss.
	SyncAlways bool `yaml:"sync_always"`
}

// Start runs the server and waits until it accepts clients.
func Start(c Config) (*server.Server, error) {
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "rampart-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		SyncAlways: c.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats: embedded server not ready on %s", c.Listen)
	}
	return s, nil
}

func splitHostPort(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", server.RANDOM_PORT, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nats: listen address: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("nats: bad port in listen address %q", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}
