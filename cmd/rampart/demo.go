package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/rampart-io/rampart/dashboards"
	"github.com/rampart-io/rampart/internal/demo"
)

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var o overrides
	o.register(fs, withNATS|withClickHouse)
	sessions := fs.Int("sessions", 3, "agent sessions per tenant (8 tool calls each)")
	verbose := fs.Bool("v", false, "log what the components do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.Default()
	if !*verbose {
		log = slog.New(slog.DiscardHandler)
		slog.SetDefault(log) // the enforcer logs to the default logger
	}
	rep, err := demo.Run(ctx, demo.Options{
		NATSURL:           o.natsURL,
		ClickHouseAddr:    o.chAddr,
		Database:          o.database,
		SessionsPerTenant: *sessions,
		Logger:            log,
	})
	if err != nil {
		return err
	}
	rep.Print(os.Stdout)
	fmt.Fprintln(os.Stdout)
	dashboards.PrintWhere(os.Stdout)
	return nil
}
