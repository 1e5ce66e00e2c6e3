package enforcer

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/start"
	"github.com/rampart-io/rampart/schema/stream"
)

// EnvNATSURL names the environment variable that sets the NATS URL, as in
// every Rampart component; -nats wins over it, and it over the file.
const EnvNATSURL = "RAMPART_NATS_URL"

// ConfigFromArgs builds the configuration of an enforcer command from its
// flags: the file given with -config, then the environment, then flags.
func ConfigFromArgs(name string, args []string) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	file := fs.String("config", "", "YAML configuration file (unknown keys are an error)")
	natsURL := fs.String("nats", os.Getenv(EnvNATSURL), "NATS URL, or a cluster's seed URLs comma-separated (env "+EnvNATSURL+")")
	listen := fs.String("listen", "", "address to serve agents on (overrides the file)")
	upstream := fs.String("upstream", "", "backend URL (overrides the file)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	var cfg Config
	if *file != "" {
		var err error
		if cfg, err = LoadConfig(*file); err != nil {
			return cfg, err
		}
	}
	if *natsURL != "" {
		cfg.NATS.URL = stream.URLs(*natsURL)
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *upstream != "" {
		cfg.Upstream = *upstream
	}
	cfg.SetDefaults()
	return cfg, cfg.Validate()
}

// RunCommand runs an enforcer configured by args until ctx ends: what
// `rampart enforcer` and the standalone `rampart-enforcer` do. The probe
// ctx carries (package health) turns ready once it serves.
func RunCommand(ctx context.Context, name string, args []string) error {
	cfg, err := ConfigFromArgs(name, args)
	if err != nil {
		return err
	}
	// The limit is the garbage collector's budget: an enforcer's live
	// heap is a few MiB.
	cfg.MemoryLimitMiB.Apply(true)
	// Until JetStream answers (a leader elected, a quorum back), the
	// enforcer keeps trying and listens on nothing: a gateway sees it not
	// ready, and no request passes unrecorded.
	e, err := start.Retrying(ctx, slog.Default(), name, func(ctx context.Context) (*Enforcer, error) { return New(ctx, cfg) })
	if err != nil {
		return err
	}
	defer e.Close()
	ls, err := e.Listen()
	if err != nil {
		return err
	}
	// Connected to JetStream, policy loaded, listeners bound: ready for traffic.
	health.FromContext(ctx).Ready()
	return e.Serve(ctx, ls)
}
