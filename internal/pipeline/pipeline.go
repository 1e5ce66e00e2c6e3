// Package pipeline composes the single-node Rampart: an embedded JetStream
// (or an existing NATS), and the same enforcer, collector and correlator
// that run alone as separate processes, in one run group so that one failing
// stops them all. `rampart run`, `rampart demo` and the tests that need the
// whole flow (enforcer -> JetStream -> collector -> ClickHouse, correlator)
// start it here, so there is one wiring of the components.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/internal/natsserver"
	"github.com/rampart-io/rampart/schema/stream"
)

// Config is each component's own configuration, taken whole: the pipeline
// only points every component at the one JetStream, so a setting a
// component gains needs no change here.
type Config struct {
	// NATSURL is an existing NATS JetStream (one server or a cluster's
	// seeds); empty starts the embedded one that NATS configures.
	NATSURL    stream.URLs
	NATS       natsserver.Config
	Enforcer   enforcer.Config
	Collector  collector.Config
	Correlator correlator.Config
}

// The actors of the run group, in the order they start.
const (
	ActorNATS       = "nats"
	ActorEnforcer   = "enforcer"
	ActorCollector  = "collector"
	ActorCorrelator = "correlator"
)

// Pipeline is a composed, not yet running, single-node pipeline.
type Pipeline struct {
	natsURL    stream.URLs
	ns         *server.Server // nil when NATS is external
	listeners  enforcer.Listeners
	enforcer   *enforcer.Enforcer
	collector  *collector.Collector
	correlator *correlator.Correlator
	log        *slog.Logger
}

// New starts the embedded JetStream (unless cfg.NATSURL names one), builds
// the components and binds the enforcer's listeners, so that an address in
// use fails here, before anything runs. On error, whatever it started is
// stopped again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Pipeline, err error) {
	if log == nil {
		log = slog.Default()
	}
	p := &Pipeline{natsURL: cfg.NATSURL, log: log}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.natsURL == "" {
		if p.ns, err = natsserver.Start(cfg.NATS); err != nil {
			return nil, err
		}
		p.natsURL = stream.URLs(p.ns.ClientURL())
		log.Info("embedded NATS JetStream", "url", p.natsURL, "store", cfg.NATS.StoreDir)
	}
	cfg.Enforcer.NATS.URL = p.natsURL
	cfg.Collector.NATSURL = p.natsURL
	cfg.Correlator.NATSURL = p.natsURL
	// One node, one agent inventory: given to the collector alone, the
	// correlator's rules read it too, or they would judge agents the
	// stored rows (and so a replay) call registered as unknown.
	if cfg.Correlator.Inventory.File == "" {
		cfg.Correlator.Inventory = cfg.Collector.Inventory
	}

	if p.enforcer, err = enforcer.New(ctx, cfg.Enforcer); err != nil {
		return nil, err
	}
	if p.listeners, err = p.enforcer.Listen(); err != nil {
		return nil, err
	}
	if p.collector, err = collector.New(ctx, cfg.Collector, log); err != nil {
		return nil, err
	}
	if p.correlator, err = correlator.New(ctx, cfg.Correlator, log); err != nil {
		return nil, err
	}
	return p, nil
}

// NATSURL is the JetStream every component uses.
func (p *Pipeline) NATSURL() string { return string(p.natsURL) }

// EnforcerAddr is the address the enforcer's HTTP listener is bound to.
func (p *Pipeline) EnforcerAddr() net.Addr { return p.listeners.HTTP.Addr() }

// Actors names what the pipeline runs, in start order: the embedded NATS
// (when it started one) and each component.
func (p *Pipeline) Actors() []string {
	var a []string
	if p.ns != nil {
		a = append(a, ActorNATS)
	}
	return append(a, ActorEnforcer, ActorCollector, ActorCorrelator)
}

// Run serves the enforcer and runs the collector and correlator until ctx
// ends or one of them fails, which stops the others. It returns the first
// failure; an ending ctx is no failure.
func (p *Pipeline) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return named(ActorEnforcer, p.enforcer.Serve(gctx, p.listeners)) })
	g.Go(func() error { return named(ActorCollector, p.collector.Run(gctx)) })
	g.Go(func() error { return named(ActorCorrelator, p.correlator.Run(gctx)) })
	err := g.Wait()
	// Serve has closed the listeners; Close must not close them again.
	p.listeners = enforcer.Listeners{}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func named(actor string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", actor, err)
}

// Close releases the components and stops the embedded NATS; call it after
// Run has returned (or instead of Run).
func (p *Pipeline) Close() {
	if p.listeners.HTTP != nil {
		p.listeners.HTTP.Close()
	}
	if p.listeners.GRPC != nil {
		p.listeners.GRPC.Close()
	}
	if p.correlator != nil {
		p.correlator.Close()
	}
	if p.collector != nil {
		p.collector.Close()
	}
	if p.enforcer != nil {
		p.enforcer.Close()
	}
	if p.ns != nil {
		p.ns.Shutdown()
		p.ns.WaitForShutdown()
	}
}
