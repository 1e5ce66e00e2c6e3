package correlator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// childEnv carries a child correlator's spec: this test binary, run again
// with it set, is a correlator process the test can SIGKILL.
const childEnv = "RAMPART_CORRELATOR_CHILD"

type childSpec struct {
	NATS, ClickHouse, Database, Instance string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	if spec := os.Getenv(generatorEnv); spec != "" {
		os.Exit(runGenerator(spec))
	}
	os.Exit(m.Run())
}

// runChild runs a correlator with the denials detector until signalled.
func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := correlator.Defaults()
	cfg.NATSURL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database, cfg.Instance = stream.URLs(s.NATS), chstore.AddrList(s.ClickHouse), s.Database, s.Instance
	cfg.BatchWait, cfg.RetryDelay = 50*time.Millisecond, 200*time.Millisecond
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := correlator.New(ctx, cfg, log, correlator.WithDetector(newDenials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *rig) spawn(t *testing.T, instance string) *child {
	t.Helper()
	spec, _ := json.Marshal(childSpec{NATS: r.srv.URL(), ClickHouse: r.addr, Database: r.ch.Database(), Instance: instance})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	logf, _ := os.OpenFile(filepath.Join(t.TempDir(), instance+".log"), os.O_CREATE|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	t.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// A correlator SIGKILLed again and again, mid-window and mid-batch, under
// load: once a last one has caught up, the stored alerts are exactly those
// the rules raise over the stored events in stream order — none lost,
// none twice — and every run's chain verifies.
func TestCorrelatorKilledMidWindowLosesAndDoublesNothing(t *testing.T) {
	r := newRig(t)
	stop := make(chan struct{})
	loaded := make(chan int)
	go func() {
		n := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				loaded <- n
				return
			default:
			}
			tenant, session := fmt.Sprintf("t%d", i%3), fmt.Sprintf("s%d", (i/7)%40)
			effect := event.EffectAllow
			if i%2 == 0 {
				effect = event.EffectDeny
			}
			r.pub.send(r.t, tenant, session, event.KindDecision, effect)
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	kills := 0
	for i := range 8 {
		c := r.spawn(t, fmt.Sprintf("correlator:run%d", i))
		time.Sleep(time.Duration(400+i*97%500) * time.Millisecond)
		c.kill()
		kills++
	}
	r.spawn(t, "correlator:last")
	time.Sleep(500 * time.Millisecond)
	close(stop)
	published := <-loaded
	// The killed runs' unacknowledged messages come back after the
	// consumer's 30s ack wait; the last run skips them (it caught up past
	// them at start) and acks them.
	r.waitIdleFor("correlator-detect", 90*time.Second)
	t.Logf("SIGKILLed the correlator %d times under %d events", kills, published)

	// Reconcile: what the rules raise over the stored input, in order.
	stored := r.stored()
	want := newDenials()
	expected := map[string]bool{}
	got := map[string]int{}
	var mine []*event.Event
	for _, e := range stored {
		switch {
		case e.Instance == "enf":
			for _, a := range want.Observe(e) {
				expected[a.ID] = true
			}
		default:
			mine = append(mine, e)
			if e.Kind == event.KindAlert {
				got[e.ID]++
			}
		}
	}
	var lost, doubled, unexpected int
	for id := range expected {
		if got[id] == 0 {
			lost++
		}
	}
	for id, n := range got {
		if n > 1 {
			doubled++
		}
		if !expected[id] {
			unexpected++
		}
	}
	t.Logf("alerts expected %d, stored %d, lost %d, doubled %d, unexpected %d", len(expected), len(got), lost, doubled, unexpected)
	if len(expected) == 0 || lost+doubled+unexpected != 0 {
		t.Fatal("alerts do not reconcile")
	}
	rep := chain.Check(mine, chain.Options{})
	t.Logf("correlator chains: %d events, %d chains, %d checkpoints, findings %v", rep.Events, rep.Chains, rep.Checkpoints, rep.Findings)
	if !rep.Clean() {
		t.Fatal("a correlator chain does not verify")
	}
}
