package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/internal/natsserver"
	"github.com/rampart-io/rampart/internal/pipeline"
	"github.com/rampart-io/rampart/schema/stream"
)

// runAll is the single-node default: an embedded JetStream (or, with -nats,
// an existing one such as a cluster) and the same enforcer, collector and
// correlator that run alone, composed by package pipeline, so one failing
// stops them all.
func runAll(ctx context.Context, args []string) error {
	cfg, err := runConfig(args)
	if err != nil {
		return err
	}
	p, err := pipeline.New(ctx, cfg, slog.Default())
	if err != nil {
		return err
	}
	defer p.Close()
	// New started the embedded JetStream and every component, and bound
	// the enforcer's listeners.
	health.FromContext(ctx).Ready()
	return p.Run(ctx)
}

// runConfig reads run's flags and the components' files into the
// pipeline's configuration.
func runConfig(args []string) (pipeline.Config, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	enforcerFile := fs.String("enforcer-config", "", "enforcer YAML file (required)")
	collectorFile := fs.String("collector-config", "", "collector YAML file")
	correlatorFile := fs.String("correlator-config", "", "correlator YAML file")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "address of the embedded NATS server")
	dataDir := fs.String("data-dir", "data", "directory for JetStream's files")
	syncAlways := fs.Bool("nats-sync-always", false, "fsync every JetStream write before acknowledging it")
	var o overrides
	o.register(fs, withNATS|withClickHouse|withClickHouseHTTP)
	if err := fs.Parse(args); err != nil {
		return pipeline.Config{}, err
	}
	if *enforcerFile == "" {
		return pipeline.Config{}, errRequired("-enforcer-config")
	}
	if o.natsURL != "" {
		// An existing NATS (a cluster's seeds) replaces the embedded one,
		// whose flags would then do nothing.
		var embedded []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "nats-listen" || f.Name == "data-dir" || f.Name == "nats-sync-always" {
				embedded = append(embedded, "-"+f.Name)
			}
		})
		if len(embedded) > 0 {
			return pipeline.Config{}, fmt.Errorf("%s configure the embedded NATS, which -nats (or %s) replaces", strings.Join(embedded, ", "), envNATSURL)
		}
	}
	cfg := pipeline.Config{
		NATSURL:    stream.URLs(o.natsURL),
		NATS:       natsserver.Config{Listen: *natsListen, StoreDir: filepath.Join(*dataDir, "nats"), SyncAlways: *syncAlways},
		Collector:  collector.Defaults(),
		Correlator: correlator.Defaults(),
	}
	var err error
	if cfg.Enforcer, err = enforcer.LoadConfig(*enforcerFile); err != nil {
		return pipeline.Config{}, err
	}
	if err := configfile.Load(*collectorFile, &cfg.Collector); err != nil {
		return pipeline.Config{}, err
	}
	if err := configfile.Load(*correlatorFile, &cfg.Correlator); err != nil {
		return pipeline.Config{}, err
	}
	apply(&cfg.Collector.ClickHouse.Addr, o.chAddr)
	apply(&cfg.Collector.ClickHouse.Database, o.database)
	apply(&cfg.Collector.ClickHouse.HTTPAddr, o.chHTTP)
	apply(&cfg.Correlator.ClickHouse.Addr, o.chAddr)
	apply(&cfg.Correlator.ClickHouse.Database, o.database)
	apply(&cfg.Correlator.ClickHouse.HTTPAddr, o.chHTTP)
	return cfg, nil
}
