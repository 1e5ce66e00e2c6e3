package main

import (
	"context"
	"log/slog"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/start"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/stream"
)

func correlatorConfig(args []string) (correlator.Config, error) {
	cfg := correlator.Defaults()
	err := consumerConfig("correlator", args, 0, &cfg, func(c *correlator.Config) (*stream.Source, *chstore.Config) {
		return &c.Source, &c.ClickHouse
	})
	return cfg, err
}

func runCorrelator(ctx context.Context, args []string) error {
	cfg, err := correlatorConfig(args)
	if err != nil {
		return err
	}
	c, err := start.Retrying(ctx, slog.Default(), "correlator", func(ctx context.Context) (*correlator.Correlator, error) {
		return correlator.New(ctx, cfg, slog.Default())
	})
	if err != nil {
		return err
	}
	defer c.Close()
	health.FromContext(ctx).Ready()
	return c.Run(ctx)
}
