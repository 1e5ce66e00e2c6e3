package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/internal/replay"
	"github.com/rampart-io/rampart/schema/event"
)

// detectVerbs are the sub-verbs of `rampart detect`, like `policy`'s:
// each takes its own flags and arguments.
var detectVerbs = []verb{
	{"test", "run rule fixtures (events in, alerts expected) against a rule set", runDetectTest},
	{"replay", "run a rule set over stored history and list the alerts it would have raised", runDetectReplay},
}

// runDetect is `rampart detect test`, modelled on `opa test` and Sigma's
// rule regression tests (exit status: 0 when every case passes, 1 when a
// case fails, 2 for usage errors and rules or fixtures that do not load),
// and `rampart detect replay`, a backtest over stored history.
func runDetect(ctx context.Context, args []string) error {
	if len(args) > 0 {
		for _, v := range detectVerbs {
			if v.name == args[0] {
				return v.run(ctx, args[1:])
			}
		}
	}
	detectUsage(os.Stderr)
	return flag.ErrHelp
}

func detectUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  rampart detect test [-rules DIR] [-v] DIR|FILE
      run the fixture files (*_test.yaml) in DIR, or FILE, against the
      rules in DIR (or -rules); exit status 0 when every case passes,
      1 when one fails, 2 when the rules or fixtures do not load
  rampart detect replay -from T -to T [-rules DIR] [-tenant X] [-json]
          [-clickhouse ADDR] [-database DB] [-clickhouse-http ADDR]
      run the rules in DIR (default: the shipped pack) over the events
      stored in ClickHouse with times in [-from, -to) (RFC 3339), in the
      order the stream carried them, and list the alerts they would have
      raised; publishes nothing. -json prints each alert as the v1 event a
      correlator would publish, one a line; the summary goes to stderr.
      Exit status 2 for usage errors and rules that do not load
`)
}

func runDetectTest(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("detect test", flag.ContinueOnError)
	rulesDir := fs.String("rules", "", "rule directory; default: the fixtures' directory")
	verbose := fs.Bool("v", false, "print the alerts of every case, not only of failures")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{2, err} // a flag this verb does not read is a usage error
	}
	if fs.NArg() != 1 {
		detectUsage(os.Stderr)
		return flag.ErrHelp
	}
	fixtures := fs.Arg(0)
	if *rulesDir == "" {
		*rulesDir = fixtures
		if fi, err := os.Stat(fixtures); err == nil && !fi.IsDir() {
			*rulesDir = filepath.Dir(fixtures)
		}
	}
	rs, err := detect.LoadDir(*rulesDir)
	if err != nil {
		return exitError{2, err}
	}
	start := time.Now()
	rep, err := detect.RunFixtures(rs, fixtures, detect.Options{})
	if err != nil {
		return exitError{2, err}
	}
	printDetectReport(os.Stdout, rep, *verbose)
	fmt.Printf("%s %s: %d passed, %d failed (%s)\n", okWord(rep.OK()), rs.Hash(), rep.Passed, rep.Failed, time.Since(start).Round(time.Microsecond))
	if !rep.OK() {
		return exitError{1, fmt.Errorf("%d of %d cases failed", rep.Failed, rep.Passed+rep.Failed)}
	}
	return nil
}

func printDetectReport(w io.Writer, rep detect.Report, verbose bool) {
	for _, c := range rep.Cases {
		if c.Pass {
			fmt.Fprintf(w, "PASS %s:%d %s\n", c.File, c.Line, c.Name)
		} else {
			fmt.Fprintf(w, "FAIL %s:%d %s\n     %s\n", c.File, c.Line, c.Name, c.Mismatch)
		}
		if !c.Pass || verbose {
			if len(c.Got) == 0 {
				fmt.Fprintf(w, "     got no alerts\n")
			}
			for _, g := range c.Got {
				fmt.Fprintf(w, "     got {rule: %s, group: %v, count: %d, evidence: %v}\n", g.Rule, g.Group, g.Count, g.Evidence)
			}
		}
	}
}

// exitError carries the exit status a verb wants for its error.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func runDetectReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("detect replay", flag.ContinueOnError)
	var o overrides
	o.register(fs, withClickHouse|withClickHouseHTTP)
	from := fs.String("from", "", "RFC 3339 start of the range (inclusive); required")
	to := fs.String("to", "", "RFC 3339 end of the range (exclusive); required")
	rulesDir := fs.String("rules", "", "rule directory; default: the shipped pack")
	tenant := fs.String("tenant", "", "replay only this tenant's events")
	asJSON := fs.Bool("json", false, "print each alert as a v1 event, one JSON object a line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{2, err}
	}
	if fs.NArg() != 0 {
		return exitError{2, fmt.Errorf("detect replay takes no arguments, got %q", fs.Args())}
	}
	opts := replay.Options{Range: chstore.Range{Tenant: *tenant}}
	for _, t := range []struct {
		name, s string
		dst     *time.Time
	}{{"-from", *from, &opts.Range.From}, {"-to", *to, &opts.Range.To}} {
		if t.s == "" {
			return exitError{2, errRequired(t.name)}
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return exitError{2, fmt.Errorf("%s: bad time %q: %w", t.name, t.s, err)}
		}
		*t.dst = v
	}
	if err := opts.Range.Validate(); err != nil {
		return exitError{2, err}
	}
	opts.Rules = detect.Shipped()
	if *rulesDir != "" {
		rs, err := detect.LoadDir(*rulesDir)
		if err != nil {
			return exitError{2, err}
		}
		opts.Rules = rs
	}
	cfg := chstore.Defaults()
	apply(&cfg.Addr, o.chAddr)
	apply(&cfg.Database, o.database)
	apply(&cfg.HTTPAddr, o.chHTTP)
	ch, err := chstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer ch.Close()
	summary := io.Writer(os.Stdout)
	show := printAlert
	if *asJSON {
		summary, show = os.Stderr, printAlertJSON
	}
	res, err := replay.Run(ctx, ch, opts, func(a *event.Event) error { return show(os.Stdout, a) })
	if err != nil {
		return err
	}
	fmt.Fprintf(summary, "replayed %d events (%d of them a correlator's records, not rule input) from %s to %s with rules %s: %d alerts (%s)\n",
		res.Events, res.Skipped, opts.Range.From.Format(time.RFC3339Nano), opts.Range.To.Format(time.RFC3339Nano),
		opts.Rules.Hash(), res.Alerts, res.Took.Round(time.Millisecond))
	return nil
}

// printAlert prints one alert on one line: when, whose, which rule, the
// group it matched and its evidence.
func printAlert(w io.Writer, a *event.Event) error {
	al := a.Alert
	group := make([]string, len(al.Group))
	for i, g := range al.Group {
		group[i] = g.Field + "=" + strconv.Quote(g.Value)
	}
	_, err := fmt.Fprintf(w, "%s %s %s %s group=[%s] matched=%d first=%s last=%s evidence=%v id=%s\n",
		a.Time.UTC().Format(time.RFC3339Nano), strconv.Quote(a.Tenant), al.Severity, al.RuleID, strings.Join(group, " "), al.Count,
		al.First.UTC().Format(time.RFC3339Nano), al.Last.UTC().Format(time.RFC3339Nano), al.Evidence, a.ID)
	return err
}

func printAlertJSON(w io.Writer, a *event.Event) error {
	b, err := event.Encode(a)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
