package main

import (
	"context"
	"flag"
	"log/slog"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/internal/natsserver"
	"github.com/rampart-io/rampart/component/configfile"
)

// runAll is the single-node default: an embedded JetStream and the same
// enforcer, collector and correlator that run alone, in one run group, so
// one failing stops them all.
func runAll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	enforcerFile := fs.String("enforcer-config", "", "enforcer YAML file (required)")
	collectorFile := fs.String("collector-config", "", "collector YAML file")
	correlatorFile := fs.String("correlator-config", "", "correlator YAML file")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "address of the embedded NATS server")
	dataDir := fs.String("data-dir", "data", "directory for JetStream's files")
	syncAlways := fs.Bool("nats-sync-always", false, "fsync every JetStream write before acknowledging it")
	var o overrides
	o.register(fs, withClickHouse)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *enforcerFile == "" {
		return errRequired("-enforcer-config")
	}

	ns, err := natsserver.Start(natsserver.Config{Listen: *natsListen, StoreDir: filepath.Join(*dataDir, "nats"), SyncAlways: *syncAlways})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	natsURL := ns.ClientURL()
	slog.Info("embedded NATS JetStream", "url", natsURL, "store", filepath.Join(*dataDir, "nats"))

	ecfg, err := enforcer.LoadConfig(*enforcerFile)
	if err != nil {
		return err
	}
	ecfg.NATS.URL = natsURL
	ccfg, rcfg := collector.Defaults(), correlator.Defaults()
	if err := configfile.Load(*collectorFile, &ccfg); err != nil {
		return err
	}
	if err := configfile.Load(*correlatorFile, &rcfg); err != nil {
		return err
	}
	ccfg.NATSURL, rcfg.NATSURL = natsURL, natsURL
	apply(&ccfg.ClickHouse.Addr, o.chAddr)
	apply(&ccfg.ClickHouse.Database, o.database)
	apply(&rcfg.ClickHouse.Addr, o.chAddr)
	apply(&rcfg.ClickHouse.Database, o.database)

	enf, err := enforcer.New(ecfg)
	if err != nil {
		return err
	}
	defer enf.Close()
	col, err := collector.New(ctx, ccfg, slog.Default())
	if err != nil {
		return err
	}
	defer col.Close()
	cor, err := correlator.New(ctx, rcfg, slog.Default())
	if err != nil {
		return err
	}
	defer cor.Close()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return enf.Run(gctx) })
	g.Go(func() error { return col.Run(gctx) })
	g.Go(func() error { return cor.Run(gctx) })
	return g.Wait()
}
