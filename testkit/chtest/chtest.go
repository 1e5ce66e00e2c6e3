// Package chtest gives a test a real ClickHouse server in one call: the one
// at $RAMPART_CLICKHOUSE_ADDR (HTTP at $RAMPART_CLICKHOUSE_HTTP_ADDR), or else a private clickhouse-server started
// for the test and killed after it. Each call gets a fresh, migrated database.
//
// When the server cannot be had, the test fails if $CI is set and is
// skipped, saying why, otherwise.
package chtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
)

var (
	counter atomic.Int64
	// httpAddrs maps a private server's native address to its HTTP one.
	httpAddrs sync.Map
)

// Unavailable fails (under CI) or skips the test with reason.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
		t.Fatalf("ClickHouse required under CI: %s", reason)
	}
	t.Skipf("ClickHouse unavailable (set CI or RAMPART_REQUIRE_SERVERS to make this fatal): %s", reason)
}

// Server returns the native address of a ClickHouse server for this test,
// and the private server when one was started (nil otherwise).
func Server(t testing.TB) (string, *chserver.Server) {
	t.Helper()
	if addr := os.Getenv("RAMPART_CLICKHOUSE_ADDR"); addr != "" {
		return addr, nil
	}
	if _, err := chserver.Find(); err != nil {
		Unavailable(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, t.TempDir())
	if err != nil {
		Unavailable(t, err.Error())
	}
	t.Cleanup(srv.Stop)
	httpAddrs.Store(srv.Addr, srv.HTTPAddr)
	return srv.Addr, srv
}

// New returns a client on a fresh database with every migration applied.
func New(t testing.TB) *chstore.Client {
	t.Helper()
	addr, _ := Server(t)
	return Open(t, addr)
}

// Open connects to addr with a fresh, migrated database.
func Open(t testing.TB, addr string) *chstore.Client {
	t.Helper()
	cfg := chstore.Defaults()
	cfg.Addr = chstore.AddrList(addr)
	cfg.HTTPAddr = chstore.AddrList(os.Getenv("RAMPART_CLICKHOUSE_HTTP_ADDR"))
	if h, ok := httpAddrs.Load(addr); ok {
		cfg.HTTPAddr = chstore.AddrList(h.(string))
	}
	cfg.Database = fmt.Sprintf("rampart_t%d_%d", os.Getpid(), counter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := chstore.Open(ctx, cfg)
	if err != nil {
		Unavailable(t, err.Error())
	}
	if _, err := c.Migrate(ctx); err != nil {
		t.Fatalf("chtest: migrate: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		c.Close()
	})
	return c
}
