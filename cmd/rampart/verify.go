package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
)

// errTampered makes `rampart verify` exit non-zero when it found tampering.
var errTampered = errors.New("the record was tampered with")

// verifyArgs are verify's flags.
type verifyArgs struct {
	o                                          overrides
	tenant, instance, from, to, keys, consumer string
	asJSON                                     bool
}

func parseVerifyArgs(args []string) (verifyArgs, error) {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var a verifyArgs
	a.o.register(fs, withNATS|withClickHouse|withClickHouseHTTP)
	fs.StringVar(&a.tenant, "tenant", "", "verify the chains holding this tenant's events")
	fs.StringVar(&a.instance, "instance", "", "verify this instance's chains (an enforcer's or a correlator's)")
	fs.StringVar(&a.from, "from", "", "RFC 3339 start of the time range")
	fs.StringVar(&a.to, "to", "", "RFC 3339 end of the time range")
	fs.StringVar(&a.keys, "keys", "", "comma-separated PEM files of trusted checkpoint public keys")
	fs.StringVar(&a.consumer, "consumer", "collector", "the collector's durable consumer (with -nats: which checkpoints ClickHouse must hold)")
	fs.BoolVar(&a.asJSON, "json", false, "print the report as JSON")
	return a, fs.Parse(args)
}

func runVerify(ctx context.Context, args []string) error {
	a, err := parseVerifyArgs(args)
	if err != nil {
		return err
	}
	opts := verify.Options{Tenant: a.tenant, Instance: a.instance, NATSURL: a.o.natsURL, Consumer: a.consumer}
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{a.from, &opts.From}, {a.to, &opts.To}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.s)
		if err != nil {
			return fmt.Errorf("bad time %q: %w", t.s, err)
		}
		*t.dst = v
	}
	if a.keys != "" {
		k, err := chain.LoadPublicKeys(strings.Split(a.keys, ","))
		if err != nil {
			return err
		}
		opts.Keys = k
	}
	cfg := chstore.Defaults()
	apply(&cfg.Addr, a.o.chAddr)
	apply(&cfg.Database, a.o.database)
	apply(&cfg.HTTPAddr, a.o.chHTTP)
	ch, err := chstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer ch.Close()
	res, err := verify.Run(ctx, ch, opts)
	if err != nil {
		return err
	}
	if a.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		fmt.Printf("verified %d events in %d chains (%d checkpoints, %d witnesses from JetStream)\n",
			res.Events, res.Chains, res.Checkpoints, res.Witnesses)
		total := res.Read + res.Checked
		fmt.Printf("read %s, checked %s: %.0f events/s, at most %d links held at once\n", res.Read.Round(time.Millisecond), res.Checked.Round(time.Millisecond),
			float64(res.Events)/total.Seconds(), res.Held)
		if res.Alerts > 0 {
			fmt.Printf("checked the evidence of %d alerts (%d event ids)\n", res.Alerts, res.Evidence)
		}
		if opts.Keys == nil {
			fmt.Println("checkpoint signatures not checked: no -keys given")
		}
		if res.InFlight > 0 {
			fmt.Printf("%d events were still on their way to ClickHouse: gaps among the newest events may be in flight; run again once the collector has caught up\n", res.InFlight)
		}
		for _, f := range res.Findings {
			fmt.Println(f)
		}
	}
	if !res.Clean() {
		return errTampered
	}
	return nil
}
