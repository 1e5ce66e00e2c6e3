package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/internal/investigate"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
)

// Exit statuses of `rampart investigate`, stable for scripts.
const (
	exitNotFound   = 3 // nothing recorded for what was asked
	exitUnverified = 4 // found, but the record of it does not verify
)

const investigateUsage = `usage: rampart investigate VERB [flags] ARGS

verbs:
  session TENANT SESSION          the timeline, delegation chains, alerts, and whether it verifies
  task TENANT TASK                the same for every session of a task
  agent TENANT ACTOR              sessions, principals, tools, destinations, data classes,
                                  denials and alerts of one agent (-since, -until)
  request ID                      one request: decision, rule, policy hash, response
  blast-radius TENANT IDENTITY    everything reachable from a compromised agent or principal (-since)
  alert ID                        one alert and its evidence as a timeline, and whether it verifies
  credential TENANT JTI           one task credential: its issue and revocation, the decisions
                                  that put it on calls, and whether they verify

exit status: 0 answered, 1 error, 2 bad usage, 3 nothing found, 4 the record does not verify
`

func runInvestigate(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(os.Stderr, investigateUsage)
		return flag.ErrHelp
	}
	verb := args[0]
	fs := flag.NewFlagSet("investigate "+verb, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, investigateUsage); fs.PrintDefaults() }
	var o overrides
	o.register(fs, withClickHouse|withClickHouseHTTP)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	asCSV := fs.Bool("csv", false, "print the report as CSV, one block per section")
	htmlFile := fs.String("html", "", "also write the report as a self-contained HTML page to this file")
	since := fs.String("since", "", "RFC 3339 start (agent: default 24h before -until; blast-radius: required)")
	until := fs.String("until", "", "RFC 3339 end (agent; default now)")
	keys := fs.String("keys", "", "comma-separated PEM files of trusted checkpoint public keys (session, task, alert, credential)")
	// Flags may come before or after the arguments.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *asJSON && *asCSV {
		return exitError{code: 2, err: errors.New("-json and -csv exclude each other")}
	}
	wantArgs := map[string]int{"session": 2, "task": 2, "agent": 2, "request": 1, "blast-radius": 2, "alert": 1, "credential": 2}
	n, ok := wantArgs[verb]
	if !ok {
		fmt.Fprint(os.Stderr, investigateUsage)
		return flag.ErrHelp
	}
	if len(pos) != n {
		return exitError{code: 2, err: fmt.Errorf("%s takes %d argument(s), got %d", verb, n, len(pos))}
	}
	var from, to time.Time
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{*since, &from}, {*until, &to}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.s)
		if err != nil {
			return exitError{code: 2, err: fmt.Errorf("bad time %q: %w", t.s, err)}
		}
		*t.dst = v
	}
	var trusted map[string]ed25519.PublicKey
	if *keys != "" {
		k, err := chain.LoadPublicKeys(strings.Split(*keys, ","))
		if err != nil {
			return err
		}
		trusted = k
	}

	cfg := chstore.Defaults()
	apply(&cfg.Addr, o.chAddr)
	apply(&cfg.HTTPAddr, o.chHTTP) // the chain check reads its ranges over HTTP
	apply(&cfg.Database, o.database)
	ch, err := chstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer ch.Close()
	st := investigate.New(ch, cfg.Database)
	v := chainVerifier{ch: ch, keys: trusted}

	var rep *investigate.Report
	switch verb {
	case "session":
		rep, err = st.Session(ctx, v, pos[0], pos[1])
	case "task":
		rep, err = st.Task(ctx, v, pos[0], pos[1])
	case "agent":
		if to.IsZero() {
			to = time.Now()
		}
		if from.IsZero() {
			from = to.Add(-24 * time.Hour)
		}
		rep, err = st.Agent(ctx, pos[0], pos[1], from, to)
	case "request":
		rep, err = st.Request(ctx, pos[0])
	case "blast-radius":
		rep, err = st.BlastRadius(ctx, pos[0], pos[1], from)
	case "alert":
		rep, err = st.Alert(ctx, v, pos[0])
	case "credential":
		rep, err = st.Credential(ctx, v, pos[0], pos[1])
	}
	if rep != nil {
		format := investigate.Table
		if *asJSON {
			format = investigate.JSON
		} else if *asCSV {
			format = investigate.CSV
		}
		if rerr := investigate.Render(os.Stdout, rep, format); rerr != nil {
			return rerr
		}
		if *htmlFile != "" {
			if herr := writeHTML(*htmlFile, rep); herr != nil {
				return herr
			}
		}
	}
	switch {
	case errors.Is(err, investigate.ErrNotFound):
		return exitError{code: exitNotFound, err: err}
	case errors.Is(err, investigate.ErrBadInput):
		return exitError{code: 2, err: err}
	case errors.Is(err, investigate.ErrUnverified):
		return exitError{code: exitUnverified, err: err}
	}
	return err
}

func writeHTML(path string, rep *investigate.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var w io.Writer = f
	if err := investigate.RenderHTML(w, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chainVerifier checks ranges of the stored chains with internal/verify.
type chainVerifier struct {
	ch   *chstore.Client
	keys map[string]ed25519.PublicKey
}

func (c chainVerifier) VerifyRanges(ctx context.Context, rs []investigate.Range) (*investigate.Verification, error) {
	vr := make([]verify.Range, len(rs))
	for i, r := range rs {
		vr[i] = verify.Range{Instance: r.Instance, Epoch: r.Epoch, From: r.From, To: r.To, First: r.First, Last: r.Last}
	}
	rep, err := verify.CheckRanges(ctx, c.ch, vr, c.keys)
	if err != nil {
		return nil, err
	}
	out := &investigate.Verification{Ranges: rs, Events: rep.Events, Findings: []string{}}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, f.String())
	}
	return out, nil
}
