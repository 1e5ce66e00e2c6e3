package dashboards_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-io/rampart/component/telemetry"
	"github.com/rampart-io/rampart/dashboards/build"
	"github.com/rampart-io/rampart/loadtest/toolserver"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/promtest"
)

// grafanaPromQL expands what Grafana's Prometheus datasource expands in
// the dashboards' expressions: $__rate_interval is
// max($__interval + scrape interval, 4 × scrape interval), which with a
// short panel interval is four scrape intervals.
func grafanaPromQL(expr string, scrape time.Duration) string {
	return strings.ReplaceAll(expr, "$__rate_interval", fmt.Sprintf("%ds", int(4*scrape.Seconds())))
}

// TestPromQL runs `rampart run` with its /metrics listener on, drives the
// demo's workload through it while Debian's Prometheus scrapes it, and
// runs every PromQL expression of the dashboards and alert rules: each
// must return series.
func TestPromQL(t *testing.T) {
	chAddr, _ := chtest.Server(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/rampart").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	backend := httptest.NewServer(&toolserver.Server{})
	defer backend.Close()
	iss, err := workload.NewIssuer("https://idp.example.com", "rampart")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := iss.JWKS()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	policy, err := filepath.Abs("../internal/demo/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listen, metricsAddr := freeAddr(t), freeAddr(t)
	// The spool configured, so that its depth is reported.
	cfg := fmt.Sprintf(`listen: %s
upstream: %s
instance: prom-enforcer
policy_file: %s
identity:
  issuer: https://idp.example.com
  audience: rampart
  jwks_file: %s
nats:
  on_unavailable: spool
  spool:
    dir: %s
`, listen, backend.URL, policy, filepath.Join(dir, "jwks.json"), filepath.Join(dir, "spool"))
	cfgFile := filepath.Join(dir, "enforcer.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "migrate", "-clickhouse", chAddr, "-database", "promql").CombinedOutput(); err != nil {
		t.Fatalf("rampart migrate: %v\n%s", err, out)
	}
	run := exec.Command(bin, "run", "-enforcer-config", cfgFile, "-clickhouse", chAddr, "-database", "promql",
		"-nats-listen", freeAddr(t), "-data-dir", filepath.Join(dir, "data"))
	run.Env = append(os.Environ(), telemetry.EnvMetricsListen+"="+metricsAddr)
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		_ = run.Wait()
		if t.Failed() {
			t.Logf("rampart run:\n%s", out.String())
		}
	})
	waitListening(t, listen, &out)
	waitListening(t, metricsAddr, &out)

	prom := promtest.Run(t, time.Second, metricsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	driver := &workload.Driver{URL: "http://" + listen + "/mcp", Issuer: iss, Client: &http.Client{Timeout: 10 * time.Second}}
	// Two rounds some seconds apart, so that rates over a few scrapes see traffic.
	for round := 0; round < 2; round++ {
		for _, r := range driver.Run(ctx, workload.Scenario([]string{"acme", "globex"}, 2), 4) {
			if r.Err != nil {
				t.Fatalf("call: %v", r.Err)
			}
		}
		time.Sleep(3 * prom.Interval)
	}

	type query struct{ where, expr string }
	var queries []query
	for _, b := range build.Boards() {
		for _, p := range b.Panels {
			for _, q := range p.PromQL {
				queries = append(queries, query{b.UID + "/" + p.Title, grafanaPromQL(q.Expr, prom.Interval)})
			}
		}
	}
	for _, r := range build.Rules() {
		if r.PromQL != "" {
			queries = append(queries, query{"rule/" + r.UID, r.PromQL})
		}
	}
	if len(queries) < 10 {
		t.Fatalf("only %d PromQL queries", len(queries))
	}
	for _, q := range queries {
		t.Run(q.where, func(t *testing.T) {
			// Rates need two scrapes of a series inside their window: poll
			// until they have them, or the deadline.
			deadline := time.Now().Add(30 * time.Second)
			for {
				series, err := prom.Query(ctx, q.expr)
				if err != nil {
					t.Fatal(err)
				}
				if len(series) > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no series for %s", q.expr)
				}
				time.Sleep(prom.Interval)
			}
		})
	}
}

func waitListening(t *testing.T, addr string, out *bytes.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s:\n%s", addr, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
