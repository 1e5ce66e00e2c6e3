package enforcer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

// An instance that dies between ending a task (its record marked ended,
// its revocations written) and recording the revoked events loses no
// event: the task's record keeps them pending, and once their lease runs
// out one of the surviving instances claims and emits them. Every credential minted under the task ends with exactly one
// revoked event, however many instances sweep.
func TestRevokedEventsSurviveACrash(t *testing.T) {
	idle := func(c *enforcer.Config) {
		c.Tasks = task.Config{IdleTimeout: time.Second, SweepInterval: 50 * time.Millisecond}
	}
	// The harness's own instance keeps the default idle timeout: it does
	// not end the task before A, and sweeps as a survivor.
	h := newHarness(t, 2*time.Second, withCredentials(t))

	// Instance A, alone while the task lives, crashes at the end.
	crashed := make(chan task.Record, 1)
	cfg := h.config(t, 2*time.Second)
	cfg.Instance = "enf-crash"
	credentialsConfig(t, h, &cfg)
	idle(&cfg)
	a, err := enforcer.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	enforcer.CrashBeforeRevokedEvents(a, func(r task.Record) bool {
		select {
		case crashed <- r:
		default:
		}
		return true
	})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, enforcer.Listeners{HTTP: ln}) }()
	kill := func() {
		cancel()
		<-done
		a.Close()
	}
	aURL := "http://" + ln.Addr().String()

	var jtis []string
	for _, sid := range []string{"sess-1", "sess-2"} {
		tok := h.tokenWith(t, func(c map[string]any) { c["sid"] = sid })
		r := call(t, aURL, "search", "t-crash", bearer(tok))
		if r.status != http.StatusOK {
			kill()
			t.Fatalf("call: %d %v", r.status, r.body)
		}
		jtis = append(jtis, h.events(t, r.requestID, event.KindDecision)[event.KindDecision].Decision.CredentialJTI)
	}
	var ended task.Record
	select {
	case ended = <-crashed:
	case <-time.After(30 * time.Second):
		kill()
		t.Fatal("the task was not ended idle")
	}
	kill()
	if ended.Ended != task.EndIdle || len(ended.Credentials) != 2 || !ended.EventsPending {
		t.Fatalf("ended record %+v", ended)
	}
	if _, err := revocation(t, h, stream.TaskRevocationKey("acme", "t-crash")); err != nil {
		t.Fatalf("the task's revocation was not written before the crash: %v", err)
	}
	if evs := h.revokedEvents(t, "t-crash"); len(evs) != 0 {
		t.Fatalf("%d revoked events recorded before the crash point", len(evs))
	}

	// Two survivors sweep; one of them emits the events, once.
	withCreds := func(c *enforcer.Config) { credentialsConfig(t, h, c); idle(c) }
	h.another(t, "enf-b", withCreds)
	h.another(t, "enf-c", withCreds)
	poll.Until(t, 30*time.Second, func() error {
		if evs := h.revokedEvents(t, "t-crash"); len(evs) < len(jtis) {
			return fmt.Errorf("%d revoked events, want %d", len(evs), len(jtis))
		}
		return nil
	})
	// Confirmed: no sweep emits them again, so the count below is final.
	poll.Until(t, 30*time.Second, func() error {
		rec, err := taskRecord(t, h, "acme", "t-crash")
		if err != nil {
			return err
		}
		if rec.EventsPending {
			return fmt.Errorf("revoked events still pending, claimed by %s", rec.EventsClaimedBy)
		}
		return nil
	})
	count := map[string]int{}
	for _, e := range h.revokedEvents(t, "t-crash") {
		count[e.Credential.JTI]++
		if e.Credential.Reason != task.EndIdle {
			t.Errorf("revoked event %+v", e.Credential)
		}
	}
	for _, j := range jtis {
		if count[j] != 1 {
			t.Errorf("credential %s: %d revoked events, want 1 (all: %v)", j, count[j], count)
		}
	}
	if len(count) != len(jtis) {
		t.Errorf("revoked events for %v, want %v", count, jtis)
	}
}

// taskRecord reads tenant's task id from the tasks bucket.
func taskRecord(t *testing.T, h *harness, tenant, id string) (task.Record, error) {
	t.Helper()
	kv, err := h.nats.JetStream().KeyValue(context.Background(), stream.Tasks)
	if err != nil {
		return task.Record{}, err
	}
	e, err := kv.Get(context.Background(), stream.TaskKey(tenant, id))
	if err != nil {
		return task.Record{}, err
	}
	var r task.Record
	return r, json.Unmarshal(e.Value(), &r)
}
