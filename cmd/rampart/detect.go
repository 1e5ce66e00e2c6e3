package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-io/rampart/correlator/detect"
)

// detectVerbs are the sub-verbs of `rampart detect`, like `policy`'s:
// each takes its own flags and arguments.
var detectVerbs = []verb{
	{"test", "run rule fixtures (events in, alerts expected) against a rule set", runDetectTest},
}

// runDetect is `rampart detect test`, modelled on `opa test` and Sigma's
// rule regression tests. Exit status: 0 when every case passes, 1 when a
// case fails, 2 for usage errors and rules or fixtures that do not load.
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
