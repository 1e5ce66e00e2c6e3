// Command rampart-enforcer is the enforcer alone, for deploying beside a
// gateway: the same as `rampart enforcer`, in a binary that carries no NATS
// server, ClickHouse client or pipeline components, so it maps less memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/telemetry"
	"github.com/rampart-io/rampart/enforcer"
)

func main() {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("RAMPART_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	probe := health.NewProbe()
	probe.StopWhenDone(ctx)
	shutdown, err := telemetry.Setup(ctx, "rampart-enforcer", probe)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rampart-enforcer: telemetry: %v\n", err)
		os.Exit(1)
	}
	err = enforcer.RunCommand(health.NewContext(ctx, probe), "rampart-enforcer", os.Args[1:])
	_ = shutdown(context.Background())
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rampart-enforcer: %v\n", err)
		os.Exit(1)
	}
}
