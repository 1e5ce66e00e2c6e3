package main

import (
	"context"
	"log/slog"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/start"
	"github.com/rampart-io/rampart/schema/stream"
)

func collectorConfig(args []string) (collector.Config, error) {
	cfg := collector.Defaults()
	err := consumerConfig("collector", args, withClickHouseHTTP, &cfg, func(c *collector.Config) (*stream.Source, *chstore.Config) {
		return &c.Source, &c.ClickHouse
	})
	return cfg, err
}

func runCollector(ctx context.Context, args []string) error {
	cfg, err := collectorConfig(args)
	if err != nil {
		return err
	}
	cfg.ApplyMemoryLimit()
	c, err := start.Retrying(ctx, slog.Default(), "collector", func(ctx context.Context) (*collector.Collector, error) {
		return collector.New(ctx, cfg, slog.Default())
	})
	if err != nil {
		return err
	}
	defer c.Close()
	health.FromContext(ctx).Ready()
	return c.Run(ctx)
}
