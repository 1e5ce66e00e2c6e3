package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/configfile"
)

func correlatorConfig(args []string) (correlator.Config, error) {
	fs := flag.NewFlagSet("correlator", flag.ContinueOnError)
	var o overrides
	o.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return correlator.Config{}, err
	}
	cfg := correlator.Defaults()
	if err := configfile.Load(o.config, &cfg); err != nil {
		return cfg, err
	}
	apply(&cfg.NATSURL, o.natsURL)
	apply(&cfg.ClickHouse.Addr, o.chAddr)
	apply(&cfg.ClickHouse.Database, o.database)
	return cfg, cfg.Validate()
}

func runCorrelator(ctx context.Context, args []string) error {
	cfg, err := correlatorConfig(args)
	if err != nil {
		return err
	}
	c, err := correlator.New(ctx, cfg, slog.Default())
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Run(ctx)
}
