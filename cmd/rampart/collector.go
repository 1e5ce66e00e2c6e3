package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/schema/configfile"
)

func collectorConfig(args []string) (collector.Config, error) {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	var o overrides
	o.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return collector.Config{}, err
	}
	cfg := collector.Defaults()
	if err := configfile.Load(o.config, &cfg); err != nil {
		return cfg, err
	}
	apply(&cfg.NATSURL, o.natsURL)
	apply(&cfg.ClickHouse.Addr, o.chAddr)
	apply(&cfg.ClickHouse.Database, o.database)
	return cfg, cfg.Validate()
}

func runCollector(ctx context.Context, args []string) error {
	cfg, err := collectorConfig(args)
	if err != nil {
		return err
	}
	c, err := collector.New(ctx, cfg, slog.Default())
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Run(ctx)
}
