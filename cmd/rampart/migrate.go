package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/configfile"
)

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var o overrides
	o.register(fs, withConfig|withClickHouse)
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The file is a collector or correlator config: its clickhouse section.
	var file struct {
		ClickHouse chstore.Config `yaml:"clickhouse"`
	}
	file.ClickHouse = chstore.Defaults()
	if o.config != "" {
		if err := configfile.LoadSection(o.config, "clickhouse", &file.ClickHouse); err != nil {
			return err
		}
	}
	cfg := file.ClickHouse
	apply(&cfg.Addr, o.chAddr)
	apply(&cfg.Database, o.database)
	// Filling a new table from a large events_raw is one long statement.
	cfg.ReadTimeout = max(cfg.ReadTimeout, 2*time.Hour)
	c, err := chstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	applied, err := c.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("database %s at %s: applied %d migration(s) %v\n", cfg.Database, cfg.Addr, len(applied), applied)
	return nil
}
