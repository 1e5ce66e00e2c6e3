package pipeline_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/internal/natsserver"
	"github.com/rampart-io/rampart/internal/pipeline"
	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/testkit/chtest"
)

const policyYAML = `id: p
rules:
  - id: allow-all
    match: 'true'
    effect: allow
`

// config is a single node on free ports, its ClickHouse at chAddr in
// database db.
func config(t *testing.T, chAddr, db string) pipeline.Config {
	t.Helper()
	dir := t.TempDir()
	iss, err := workload.NewIssuer("https://idp.pipeline.test", "rampart")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := iss.JWKS()
	os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600)
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policyYAML), 0o600)
	cfg := pipeline.Config{
		NATS:       natsserver.Config{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats")},
		Collector:  collector.Defaults(),
		Correlator: correlator.Defaults(),
	}
	e := &cfg.Enforcer
	e.Upstream, e.Listen, e.Instance = "http://127.0.0.1:1", "127.0.0.1:0", "pipeline-test"
	e.Identity.Issuer, e.Identity.Audience, e.Identity.JWKSFile = iss.URL, iss.Audience, filepath.Join(dir, "jwks.json")
	e.PolicyFile = filepath.Join(dir, "policy.yaml")
	e.SetDefaults()
	for _, ch := range []*chstore.AddrList{&cfg.Collector.ClickHouse.Addr, &cfg.Correlator.ClickHouse.Addr} {
		*ch = chstore.AddrList(chAddr)
	}
	cfg.Collector.ClickHouse.Database, cfg.Correlator.ClickHouse.Database = db, db
	return cfg
}

// A component that cannot start fails New, and what New had started (the
// embedded JetStream, the enforcer's listener) is stopped again.
func TestNewStopsWhatItStartedOnFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	natsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	natsAddr := natsLn.Addr().String()
	natsLn.Close()

	cfg := config(t, "127.0.0.1:1", "rampart")
	cfg.NATS.Listen = natsAddr
	cfg.Enforcer.Listen = taken.Addr().String() // in use: the enforcer cannot listen
	_, err = pipeline.New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New = %v, want the enforcer's address in use", err)
	}
	if c, err := net.DialTimeout("tcp", natsAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the embedded JetStream still listens on %s after New failed", natsAddr)
	}
}

// Run starts the embedded JetStream and the three components, serves the
// enforcer, and returns nil when its context ends.
func TestRunUntilCancelled(t *testing.T) {
	addr, _ := chtest.Server(t)
	cfg := config(t, addr, chtest.Open(t, addr).Database())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := pipeline.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if want := []string{pipeline.ActorNATS, pipeline.ActorEnforcer, pipeline.ActorCollector, pipeline.ActorCorrelator}; !slices.Equal(p.Actors(), want) {
		t.Fatalf("actors %q, want %q", p.Actors(), want)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- p.Run(runCtx) }()
	// The enforcer answers (an unauthenticated call is refused, and recorded).
	c, err := net.DialTimeout("tcp", p.EnforcerAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run = %v: an ended context is no failure", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
