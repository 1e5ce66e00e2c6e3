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
	cfg, err := migrateConfig(args)
	if err != nil {
		return err
	}
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

// migrateConfig reads migrate's flags and the clickhouse section of the
// file -config names.
func migrateConfig(args []string) (chstore.Config, error) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var o overrides
	o.register(fs, withConfig|withClickHouse)
	if err := fs.Parse(args); err != nil {
		return chstore.Config{}, err
	}
	// The file is a collector or correlator config: its clickhouse section.
	cfg := chstore.Defaults()
	if o.config != "" {
		if err := configfile.LoadSection(o.config, "clickhouse", &cfg); err != nil {
			return chstore.Config{}, err
		}
	}
	apply(&cfg.Addr, o.chAddr)
	apply(&cfg.Database, o.database)
	// Filling a new table from a large events_raw is one long statement.
	cfg.ReadTimeout = max(cfg.ReadTimeout, 2*time.Hour)
	return cfg, nil
}
