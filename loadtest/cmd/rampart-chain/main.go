// Command rampart-chain measures `rampart verify` on one long chain: it
// stores -events chained decision events of one enforcer instance, a
// signed checkpoint every -every, in ClickHouse 18.16 (a private server,
// or -clickhouse), then runs `verify` of each binary given in -verify over
// them and reports its time and peak resident memory, read from the
// kernel (the process's maxrss), side by side in the same run.
//
//	go run ./cmd/rampart-chain -events 10000000 -verify /tmp/rampart-before,../bin/rampart
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rampart-chain:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		events  = flag.Int("events", 10_000_000, "events in the chain")
		every   = flag.Int("every", 1000, "a checkpoint every this many events (the enforcer's default)")
		bins    = flag.String("verify", "", "comma-separated rampart binaries whose verify is measured (required)")
		addr    = flag.String("clickhouse", "", "ClickHouse native address; empty starts a private clickhouse-server 18.16")
		httpAdr = flag.String("clickhouse-http", "", "its HTTP address, given with -clickhouse")
		rounds  = flag.Int("rounds", 1, "times each binary verifies, alternated")
	)
	flag.Parse()
	if *bins == "" {
		return fmt.Errorf("-verify is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *addr == "" {
		dir, err := os.MkdirTemp("", "rampart-chain-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := chserver.Start(ctx, filepath.Join(dir, "clickhouse"))
		if err != nil {
			return err
		}
		defer srv.Stop()
		*addr, *httpAdr = srv.Addr, srv.HTTPAddr
	}
	cfg := chstore.Defaults()
	cfg.Addr, cfg.HTTPAddr, cfg.Database = chstore.AddrList(*addr), chstore.AddrList(*httpAdr), fmt.Sprintf("chain_%d", *events)
	ch, err := chstore.OpenMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer ch.Close()
	start := time.Now()
	if err := fill(ctx, ch, *events, *every); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "stored %d events in %s\n", *events, time.Since(start).Round(time.Second))
	fmt.Printf("rampart-chain %s: one chain of %d events, a checkpoint every %d, ClickHouse 18.16\n\n",
		time.Now().UTC().Format(time.RFC3339), *events, *every)
	fmt.Printf("| binary | round | wall | peak RSS (maxrss) | verify's report |\n| --- | ---: | ---: | ---: | --- |\n")
	for round := 1; round <= *rounds; round++ {
		for _, bin := range strings.Split(*bins, ",") {
			cmd := exec.CommandContext(ctx, bin, "verify", "-clickhouse", *addr, "-clickhouse-http", *httpAdr, "-database", cfg.Database)
			t := time.Now()
			out, err := cmd.CombinedOutput()
			wall := time.Since(t)
			if err != nil {
				return fmt.Errorf("%s verify: %w\n%s", bin, err, out)
			}
			rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
			fmt.Printf("| %s | %d | %.1f s | %.0f MiB | %s |\n", bin, round, wall.Seconds(), float64(rss)/1024,
				strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", "; ")), " "))
		}
	}
	return nil
}

// fill stores n chained events of one instance, a checkpoint every
// every, encoded while the block before is being inserted.
func fill(ctx context.Context, ch *chstore.Client, n, every int) error {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := chain.Signer{KeyID: "k", Key: priv}
	ids := &event.IDSource{}
	l := chain.NewLinker("enf-chain", "epoch-1")
	t0 := time.Now().Add(-time.Hour)
	const block = 200_000
	blocks := make(chan []byte, 1)
	inserted := make(chan error, 1)
	go func() {
		var err error
		for b := range blocks {
			if err == nil {
				err = ch.InsertRowBinary(ctx, "events_raw", ddl.EventColumns, b)
			}
		}
		inserted <- err
	}()
	var buf []byte
	collected := time.Now()
	for i := 1; i <= n; i++ {
		at := t0.Add(time.Duration(i) * time.Microsecond)
		e := &event.Event{V: event.Version, ID: ids.New(at), Time: at, Tenant: "acme", RequestID: strconv.Itoa(i),
			Identity: &event.Identity{Subject: "user:alice", Chain: []event.Actor{{Subject: "agent:planner"}}, SessionID: "s"},
			Request:  &event.Request{Method: "POST", Host: "tools", Path: "/mcp", RPCMethod: "tools/call", Tool: "search", ArgsDigest: "sha256:00"}}
		if i%every == 0 {
			l.Checkpoint(e, signer, nil)
		} else {
			e.Kind, e.Decision = event.KindDecision, &event.Decision{Effect: event.EffectAllow, PolicyID: "p", RuleID: "r", PolicyHash: "sha256:11"}
			l.Link(e)
		}
		buf = ddl.AppendRowBinary(buf, ddl.Events, &ddl.Row{Event: e, StreamSeq: uint64(i), CollectedAt: collected})
		if i%block == 0 || i == n {
			select {
			case blocks <- buf:
			case err := <-inserted:
				return err
			}
			buf = nil
			if i%(10*block) == 0 {
				fmt.Fprintf(os.Stderr, "%d/%d events\n", i, n)
			}
		}
	}
	close(blocks)
	return <-inserted
}
