// Package demo runs the whole pipeline on one machine — JetStream, a
// ClickHouse server, a sample MCP tool backend behind the enforcer, the
// collector and the correlator — drives simulated agent sessions through it,
// and reports what landed in ClickHouse. `rampart demo` prints the report;
// the end-to-end test checks it.
package demo

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/chstore/chserver"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/internal/investigate"
	"github.com/rampart-io/rampart/internal/natsserver"
	"github.com/rampart-io/rampart/internal/pipeline"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/schema/stream"
)

//go:embed policy.yaml
var policy []byte

// Options configure a demo run.
type Options struct {
	// NATSURL is an existing NATS JetStream; empty starts an embedded one.
	NATSURL string
	// ClickHouseAddr is an existing server's native address; empty starts a
	// private clickhouse-server.
	ClickHouseAddr string
	// Database is dropped and re-created by the demo: it is the demo's own.
	Database string
	// SessionsPerTenant sizes the workload (8 calls each, two tenants).
	SessionsPerTenant int
	// Dir holds the run's files (keys, policy, server data).
	Dir    string
	Logger *slog.Logger
}

// Report is what the demo found in ClickHouse after the run.
type Report struct {
	Results  []workload.Result
	Database string
	// ByKind and Decisions are the forensic queries' rows.
	ByKind, Decisions, Sessions, Timeline [][]string
	// Alerts are the detections' alerts (forensic.Alerts rows); Evidence
	// the events each one above low cites.
	Alerts   [][]string
	Evidence []AlertEvidence
	// Credentials are the task credentials minted (credentials view rows:
	// time, tenant, task, principal, audience, scope, jti, expires), and
	// Handed counts what the backend was handed for the allowed calls: a
	// token of the credential issuer, or the caller's own.
	Credentials [][]string
	Handed      map[string]int
	// Task is a declared task's life: its calls carrying credentials
	// minted for it, its completion, their revocation, the refusal after.
	Task *TaskRun
	// Investigation is `rampart investigate blast-radius` of the
	// compromised agent, as an analyst would ask it after the alerts.
	Investigation *investigate.Report
	// TimelineSession is the session the timeline reconstructs.
	TimelineTenant, TimelineSession string
	// Probes are the attacks the demo made on its enforcer, all refused.
	Probes []Probe
	// Bypass is the simulated bypass and what the file store answered.
	Bypass Bypass
	// BackendSeen are the request ids the tool backend served (the
	// bypass's is empty: it carried none).
	BackendSeen []string
	// Actors are what the demo's pipeline ran (package pipeline's names):
	// the components `rampart run` starts.
	Actors []string
	// Started is when the run began: the investigation looks from there.
	Started time.Time
	Elapsed time.Duration
}

// AlertEvidence is one alert (a forensic.Alerts row) and the events it
// cites (forensic.AlertEvidence rows).
type AlertEvidence struct {
	Alert  []string
	Events [][]string
}

// Tenants of the simulated workload.
var Tenants = []string{"acme", "globex"}

// Run executes the demo. The servers it started stop when it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	o, cleanup, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	chAddr, stopClickHouse, err := clickHouse(ctx, o)
	if err != nil {
		return nil, err
	}
	defer stopClickHouse()
	chCfg := chstore.Defaults()
	chCfg.Addr, chCfg.Database = chstore.AddrList(chAddr), o.Database
	ch, err := resetDatabase(ctx, chCfg)
	if err != nil {
		return nil, err
	}
	defer ch.Close()

	// The tool backend, behind the enforcer; its file store also behind
	// Rampart's backend middleware.
	tools := &toolserver.Server{}
	store := &fileStore{tools: tools}
	backendURL, stopBackend, err := serve(store)
	if err != nil {
		return nil, err
	}
	defer stopBackend()
	issuer, err := workload.NewIssuer("https://idp.demo.rampart.local", "rampart-tools")
	if err != nil {
		return nil, err
	}
	cfg, err := pipelineConfig(o, chCfg, backendURL, issuer)
	if err != nil {
		return nil, err
	}
	p, stopPipeline, err := startPipeline(ctx, cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	defer stopPipeline()
	stopStore, err := store.start(ctx, p.NATSURL(), p.EnforcerAddr().String(), o.Logger)
	if err != nil {
		return nil, err
	}
	defer stopStore()

	results, probes, err := drive(ctx, "http://"+p.EnforcerAddr().String(), issuer, o.SessionsPerTenant)
	if err != nil {
		return nil, err
	}
	// The simulated bypass: the incident's read_file credential, as the
	// file store logged it, replayed straight to the file store.
	stolen := results[len(results)-len(Incident())].RequestID
	byp, err := bypass(ctx, backendURL, stolen, tools.Authorization(stolen))
	if err != nil {
		return nil, err
	}
	taskRun, err := runTask(ctx, "http://"+p.EnforcerAddr().String(), issuer, tools)
	if err != nil {
		return nil, err
	}
	rep := &Report{Results: results, Probes: probes, Task: taskRun, Bypass: byp, Database: o.Database, BackendSeen: tools.Seen(),
		Actors: p.Actors(), Started: start.Add(-time.Minute), TimelineTenant: Tenants[0], TimelineSession: incidentSession}
	if err := waitLanded(ctx, ch, results, len(probes)+len(taskRun.Steps), taskRun.Forwarded(), o.SessionsPerTenant*len(Tenants)); err != nil {
		return rep, err
	}
	if err := rep.query(ctx, ch); err != nil {
		return rep, err
	}
	if err := taskRun.queryTaskCredentials(ctx, ch, o.Database); err != nil {
		return rep, err
	}
	rep.Handed = handed(results, tools)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// withDefaults fills in what o leaves unset; cleanup removes the temporary
// directory it may have made.
func (o Options) withDefaults() (Options, func(), error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionsPerTenant <= 0 {
		o.SessionsPerTenant = 3
	}
	if o.Database == "" {
		o.Database = "rampart_demo"
	}
	if o.Dir != "" {
		return o, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "rampart-demo-")
	if err != nil {
		return o, nil, err
	}
	o.Dir = dir
	return o, func() { os.RemoveAll(dir) }, nil
}

// clickHouse is o's ClickHouse server, or a private one started for the run.
func clickHouse(ctx context.Context, o Options) (addr string, stop func(), err error) {
	if o.ClickHouseAddr != "" {
		return o.ClickHouseAddr, func() {}, nil
	}
	dir := filepath.Join(o.Dir, "clickhouse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	srv, err := chserver.Start(ctx, dir)
	if err != nil {
		return "", nil, err
	}
	o.Logger.Info("started clickhouse-server", "addr", srv.Addr)
	return srv.Addr, srv.Stop, nil
}

// pipelineConfig configures the components as `rampart run` would run them,
// for the demo: its backend, its identity provider and policy, its
// database, and consumers of its own.
func pipelineConfig(o Options, chCfg chstore.Config, backendURL string, issuer *workload.Issuer) (pipeline.Config, error) {
	jwks, _ := issuer.JWKS()
	jwksFile := filepath.Join(o.Dir, "jwks.json")
	policyFile := filepath.Join(o.Dir, "policy.yaml")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		return pipeline.Config{}, err
	}
	if err := os.WriteFile(policyFile, policy, 0o600); err != nil {
		return pipeline.Config{}, err
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := pipeline.Config{
		NATSURL:    stream.URLs(o.NATSURL),
		NATS:       natsserver.Config{Listen: "127.0.0.1:0", StoreDir: filepath.Join(o.Dir, "nats")},
		Collector:  collector.Defaults(),
		Correlator: correlator.Defaults(),
	}
	e := &cfg.Enforcer
	e.Upstream = backendURL
	e.Listen = "127.0.0.1:0"
	e.Instance = "demo-enforcer-" + runID
	e.Identity.Issuer = issuer.URL
	e.Identity.Audience = issuer.Audience
	e.Identity.JWKSFile = jwksFile
	e.PolicyFile = policyFile
	e.Destinations = destinations()
	creds, err := credentials(o.Dir)
	if err != nil {
		return pipeline.Config{}, err
	}
	e.Credentials = creds
	e.SetDefaults()

	deliver := stream.DeliverAll
	if o.NATSURL != "" {
		// A shared stream holds other events: read only this run's.
		deliver = stream.DeliverNew
	}
	cfg.Collector.ClickHouse, cfg.Collector.Deliver = chCfg, deliver
	cfg.Collector.Consumer = "demo-collector-" + runID
	cfg.Collector.BatchWait = 200 * time.Millisecond
	cfg.Correlator.ClickHouse, cfg.Correlator.Deliver = chCfg, deliver
	cfg.Correlator.Consumer = "demo-correlator-" + runID
	cfg.Correlator.BatchWait = 200 * time.Millisecond
	if o.NATSURL != "" {
		// Nor should other runs' events open this run's windows: a shared
		// stream's history would hold back alerts its own report expects.
		cfg.Correlator.Detect.Recovery.Horizon = time.Millisecond
	}
	return cfg, nil
}

// startPipeline composes and runs the pipeline; stop ends it, waits for it
// and, on a shared NATS, removes the run's consumers, leaving it as found.
func startPipeline(ctx context.Context, cfg pipeline.Config, log *slog.Logger) (_ *pipeline.Pipeline, stop func(), err error) {
	p, err := pipeline.New(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- p.Run(runCtx) }()
	return p, func() {
		cancel()
		if err := <-ran; err != nil {
			log.Error("demo pipeline", "err", err)
		}
		p.Close()
		if cfg.NATSURL != "" {
			deleteConsumers(string(cfg.NATSURL), append([]string{cfg.Collector.Consumer}, cfg.Correlator.Consumers()...)...)
		}
	}, nil
}

// drive sends the workload's sessions through the enforcer at enforcerURL,
// then the boundary probes.
func drive(ctx context.Context, enforcerURL string, issuer *workload.Issuer, sessionsPerTenant int) ([]workload.Result, []Probe, error) {
	calls := append(workload.Scenario(Tenants, sessionsPerTenant), Incident()...)
	driver := &workload.Driver{URL: enforcerURL + "/mcp", Issuer: issuer, Client: &http.Client{Timeout: 10 * time.Second}}
	results := driver.Run(ctx, calls, 4)
	for _, r := range results {
		if r.Err != nil {
			return nil, nil, fmt.Errorf("demo: call failed: %w", r.Err)
		}
	}
	prober := calls[0].Caller
	prober.Session = "" // the attacks belong to no session of the workload
	probeToken, err := issuer.Token(prober, time.Minute)
	if err != nil {
		return nil, nil, err
	}
	probes, err := sendProbes(strings.TrimPrefix(enforcerURL, "http://"), boundaryProbes(probeToken))
	if err != nil {
		return nil, nil, err
	}
	return results, probes, nil
}

// query fills the report's tables with the forensic queries' rows.
func (rep *Report) query(ctx context.Context, ch *chstore.Client) error {
	db := rep.Database
	queries := []struct {
		into *[][]string
		sql  string
	}{
		{&rep.ByKind, forensic.KindCounts(db)},
		{&rep.Decisions, forensic.DecisionCounts(db)},
		{&rep.Sessions, forensic.Sessions(db)},
		{&rep.Timeline, forensic.SessionTimeline(db, rep.TimelineTenant, rep.TimelineSession)},
		{&rep.Alerts, forensic.Alerts(db)},
		{&rep.Credentials, `SELECT event_time, tenant, task_id, subject, audience, arrayStringConcat(scope, ' '), jti, expires_at
FROM ` + db + `.credentials WHERE action = 'issued' ORDER BY event_time_us, jti`},
	}
	for _, q := range queries {
		var err error
		if *q.into, err = ch.Query(ctx, q.sql); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	// The evidence of every alert above low, as the events it cites.
	for _, a := range rep.Alerts {
		if a[2] == "low" || a[2] == "info" {
			continue
		}
		rows, err := ch.Query(ctx, forensic.AlertEvidence(db, a[1], a[8]))
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		rep.Evidence = append(rep.Evidence, AlertEvidence{Alert: a, Events: rows})
	}
	inv, err := investigate.New(ch, db).BlastRadius(ctx, incidentTenant, incidentActor, rep.Started)
	if err != nil {
		return fmt.Errorf("demo: investigate: %w", err)
	}
	rep.Investigation = inv
	return nil
}

// handed counts, per tool, the allowed calls that reached the backend with
// a task credential ("<tool> credential") or with the caller's own token
// ("<tool> own"), by the issuer of the bearer token the backend was given.
func handed(results []workload.Result, tools *toolserver.Server) map[string]int {
	out := map[string]int{}
	for _, r := range results {
		if r.Status != http.StatusOK {
			continue
		}
		kind := "own"
		if issuerOf(tools.Authorization(r.RequestID)) == CredentialIssuer {
			kind = "credential"
		}
		name := r.Call.Tool
		if name == "" {
			name = r.Call.RPCMethod
		}
		out[name+" "+kind]++
	}
	return out
}

// issuerOf reads the iss of a bearer JWT without verifying it: the demo
// only reports who minted what the backend was handed.
func issuerOf(authorization string) string {
	parts := strings.Split(strings.TrimPrefix(authorization, "Bearer "), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Issuer string `json:"iss"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.Issuer
}

// resetDatabase gives the demo a fresh, migrated database of its own.
func resetDatabase(ctx context.Context, cfg chstore.Config) (*chstore.Client, error) {
	ch, err := chstore.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := ch.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
		ch.Close()
		return nil, err
	}
	if _, err := ch.Migrate(ctx); err != nil {
		ch.Close()
		return nil, err
	}
	return ch, nil
}

// waitLanded polls ClickHouse until every request and decision of the run
// (its calls, its probes and its task's requests, others) is stored, a
// response for every forwarded call (others of them outside results),
// and every session row.
func waitLanded(ctx context.Context, ch *chstore.Client, results []workload.Result, others, othersForwarded, sessions int) error {
	forwarded := othersForwarded
	for _, r := range results {
		if r.Status == http.StatusOK {
			forwarded++
		}
	}
	want := map[string]int{"request": len(results) + others, "decision": len(results) + others, "response": forwarded}
	db := ch.Database()
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	var gotSessions int
	var gotAlerts []string
	for time.Now().Before(deadline) {
		got = map[string]int{}
		rows, err := ch.Query(ctx, forensic.KindCounts(db))
		if err == nil {
			for _, r := range rows {
				got[r[0]], _ = strconv.Atoi(r[1])
			}
		}
		if srows, err := ch.Query(ctx, "SELECT count() FROM "+db+".sessions"); err == nil {
			gotSessions, _ = strconv.Atoi(srows[0][0])
		}
		raised := map[string]bool{}
		if arows, err := ch.Query(ctx, "SELECT DISTINCT rule_id FROM "+db+".alerts WHERE tenant = 'acme'"); err == nil {
			for _, r := range arows {
				raised[r[0]] = true
			}
		}
		gotAlerts = gotAlerts[:0]
		for _, r := range append(ExpectedAlerts[:len(ExpectedAlerts):len(ExpectedAlerts)], BypassAlert) {
			if raised[r] {
				gotAlerts = append(gotAlerts, r)
			}
		}
		if got["request"] == want["request"] && got["decision"] == want["decision"] &&
			got["response"] == want["response"] && gotSessions == sessions && len(gotAlerts) == len(ExpectedAlerts)+1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("demo: ClickHouse holds %v events, %d sessions and alerts %v after 60s, want %v, %d and %v",
		got, gotSessions, gotAlerts, want, sessions, append(ExpectedAlerts[:len(ExpectedAlerts):len(ExpectedAlerts)], BypassAlert))
}

// deleteConsumers removes the demo's durable consumers from the events stream.
func deleteConsumers(url string, names ...string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range names {
		_ = js.DeleteConsumer(ctx, stream.Events, n)
	}
}

// serve runs h on a free loopback port.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("demo server", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
