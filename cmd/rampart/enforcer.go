package main

import (
	"context"
	"flag"

	"github.com/rampart-io/rampart/enforcer"
)

func enforcerConfig(args []string) (enforcer.Config, error) {
	fs := flag.NewFlagSet("enforcer", flag.ContinueOnError)
	var o overrides
	o.register(fs, false)
	listen := fs.String("listen", "", "address to serve agents on (overrides the file)")
	upstream := fs.String("upstream", "", "backend URL (overrides the file)")
	if err := fs.Parse(args); err != nil {
		return enforcer.Config{}, err
	}
	var cfg enforcer.Config
	if o.config != "" {
		var err error
		if cfg, err = enforcer.LoadConfig(o.config); err != nil {
			return cfg, err
		}
	}
	apply(&cfg.NATS.URL, o.natsURL)
	apply(&cfg.Listen, *listen)
	apply(&cfg.Upstream, *upstream)
	cfg.SetDefaults()
	return cfg, cfg.Validate()
}

func runEnforcer(ctx context.Context, args []string) error {
	cfg, err := enforcerConfig(args)
	if err != nil {
		return err
	}
	e, err := enforcer.New(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Run(ctx)
}
