package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
)

// runPolicy is `rampart policy test|eval`, modelled on `opa test` and
// `opa eval`: test runs fixture files against a bundle, eval decides one
// input and explains how.
func runPolicy(ctx context.Context, args []string) error {
	if len(args) == 0 {
		policyUsage()
		return flag.ErrHelp
	}
	switch args[0] {
	case "test":
		return runPolicyTest(ctx, args[1:])
	case "eval":
		return runPolicyEval(ctx, args[1:])
	}
	policyUsage()
	return flag.ErrHelp
}

func policyUsage() {
	fmt.Fprint(os.Stderr, `usage:
  rampart policy test [-policy PATH] [-v] DIR|FILE
      run the fixture files (*_test.yaml) in DIR, or FILE, against the
      bundle in DIR (or -policy); exit status 1 when a case fails
  rampart policy eval -policy PATH -input FILE|-
      decide one input (JSON or YAML) and print the decision and how it
      was reached, as JSON
`)
}

func runPolicyTest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	bundle := fs.String("policy", "", "policy bundle (file or directory); default: the fixtures' directory")
	verbose := fs.Bool("v", false, "print the decision of every case, not only failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		policyUsage()
		return flag.ErrHelp
	}
	fixtures := fs.Arg(0)
	if *bundle == "" {
		*bundle = fixtures
		if fi, err := os.Stat(fixtures); err == nil && !fi.IsDir() {
			*bundle = filepath.Dir(fixtures)
		}
	}
	p, err := policy.Load(*bundle)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := policy.RunFixtures(ctx, p, fixtures)
	if err != nil {
		return err
	}
	for _, c := range rep.Cases {
		switch {
		case !c.Pass:
			fmt.Printf("FAIL %s:%d %s: %s\n", c.File, c.Line, c.Name, c.Mismatch)
		case *verbose:
			fmt.Printf("PASS %s:%d %s (%s by %s)\n", c.File, c.Line, c.Name, c.Got.Effect, c.Got.RuleID)
		default:
			fmt.Printf("PASS %s\n", c.Name)
		}
	}
	fmt.Printf("%s %s: %d passed, %d failed (%s)\n", okWord(rep.OK()), p.Hash(), rep.Passed, rep.Failed, time.Since(start).Round(time.Microsecond))
	if !rep.OK() {
		return fmt.Errorf("%d of %d cases failed", rep.Failed, rep.Passed+rep.Failed)
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func runPolicyEval(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	bundle := fs.String("policy", "", "policy bundle (file or directory); required")
	input := fs.String("input", "", "input document, JSON or YAML, - for stdin; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" {
		return errRequired("-policy")
	}
	if *input == "" {
		return errRequired("-input")
	}
	p, err := policy.Load(*bundle)
	if err != nil {
		return err
	}
	var data []byte
	if *input == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, policy.MaxFileBytes+1))
	} else {
		data, err = os.ReadFile(*input)
	}
	if err != nil {
		return err
	}
	in, err := policy.ParseInput(data)
	if err != nil {
		return err
	}
	x := policy.Explain(ctx, p, in)
	out := struct {
		policy.Explanation
		Bundle   string `json:"bundle"`
		Hash     string `json:"bundle_hash"`
		EvalTime string `json:"eval_time"`
	}{x, p.ID(), p.Hash(), x.Decision.Eval.String()}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return errors.Join(errors.New("writing the decision"), err)
	}
	return nil
}
