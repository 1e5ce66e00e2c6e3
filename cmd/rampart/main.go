// Command rampart is the front door of Rampart: one binary that runs each
// component alone (enforcer, collector, correlator), all of them in one
// process on embedded NATS (run), the schema migrations (migrate), and the
// end-to-end demo (demo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/telemetry"
)

// verb is one subcommand; its file is named after it.
type verb struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var verbs = []verb{
	{"enforcer", "run the inline enforcer (reverse proxy)", runEnforcer},
	{"collector", "move events from JetStream into ClickHouse", runCollector},
	{"correlator", "derive sessions from events", runCorrelator},
	{"run", "run every component in one process on embedded NATS", runAll},
	{"migrate", "apply ClickHouse schema migrations", runMigrate},
	{"verify", "check stored event chains for tampering", runVerify},
	{"keygen", "make an Ed25519 checkpoint signing key", runKeygen},
	{"demo", "run the whole pipeline on simulated agents and show what landed", runDemo},
	{"policy", "test policy fixtures, or explain one decision (test|eval)", runPolicy},
	{"detect", "test detection rules against their fixtures (test), or backtest them on stored history (replay)", runDetect},
	{"investigate", "answer an analyst's question from the record (session|task|agent|request|blast-radius|alert)", runInvestigate},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: rampart <command> [flags]\n\ncommands:\n")
	for _, v := range verbs {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", v.name, v.summary)
	}
	fmt.Fprintf(os.Stderr, "\nrampart <command> -h shows the command's flags.\n")
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, v := range verbs {
		if v.name == os.Args[1] {
			// The component a verb runs marks the probe ready once started;
			// RAMPART_METRICS_LISTEN serves it.
			probe := health.NewProbe()
			probe.StopWhenDone(ctx)
			shutdown, err := telemetry.Setup(ctx, "rampart-"+v.name, probe)
			if err != nil {
				fmt.Fprintf(os.Stderr, "rampart: telemetry: %v\n", err)
				os.Exit(1)
			}
			err = v.run(health.NewContext(ctx, probe), os.Args[2:])
			_ = shutdown(context.Background())
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(2)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "rampart %s: %v\n", v.name, err)
				code := 1
				var ee exitError
				if errors.As(err, &ee) {
					code = ee.code
				}
				os.Exit(code)
			}
			return
		}
	}
	usage()
	os.Exit(2)
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("RAMPART_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
