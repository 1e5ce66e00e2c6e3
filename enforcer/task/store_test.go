package task_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/task"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// instances returns n stores over one JetStream's buckets, as n
// enforcer instances have, each watching until the test ends.
func instances(t *testing.T, n int, cfg task.Config, opts ...task.Option) []*task.Store {
	t.Helper()
	js := natstest.Run(t).JetStream()
	ctx := context.Background()
	kv, revs, err := stream.EnsureTaskBuckets(ctx, js, stream.Defaults(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out []*task.Store
	for i := range n {
		s := task.New(cfg, kv, revs, "enf-"+string(rune('a'+i)), slog.Default(), opts...)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
		<-s.Ready()
		out = append(out, s)
	}
	return out
}

func declare(t *testing.T, s *task.Store, id string, maxCalls int64) {
	t.Helper()
	r := &task.Record{Tenant: "acme", ID: id, Declared: true, Issuer: "iss", Subject: "orch", MaxCalls: maxCalls,
		Started: time.Now(), Deadline: time.Now().Add(time.Hour), LastActive: time.Now()}
	if err := s.Declare(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// Two instances charging one task's budget at once never spend more
// than it: every allowed call is one revision-checked update.
func TestBudgetNeverOverspentAcrossInstances(t *testing.T) {
	ss := instances(t, 2, task.Config{})
	declare(t, ss[0], "t-budget", 25)
	var allowed, spent atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ss[i%2].Charge(context.Background(), task.Call{Tenant: "acme", ID: "t-budget", Issuer: "iss", Subject: "orch"})
			switch {
			case err == nil:
				allowed.Add(1)
			case errors.Is(err, task.ErrBudget):
				spent.Add(1)
			default:
				t.Errorf("charge: %v", err)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 25 || spent.Load() != 75 {
		t.Fatalf("allowed %d, refused as spent %d: want 25 and 75", allowed.Load(), spent.Load())
	}
}

// Of many instances ending one task at once, exactly one does, and only
// it writes the revocations; the others learn it ended.
func TestTaskEndsExactlyOnce(t *testing.T) {
	var ended atomic.Int64
	ss := instances(t, 3, task.Config{}, task.OnEnd(func(task.Record) { ended.Add(1) }))
	declare(t, ss[0], "t-end", 0)
	cred := &task.Credential{JTI: "jti-1", Audience: "https://tools.test", Expires: time.Now().Add(time.Minute)}
	if _, err := ss[1].Charge(context.Background(), task.Call{Tenant: "acme", ID: "t-end", Issuer: "iss", Subject: "orch", Credential: cred}); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ss[i%3].End(context.Background(), "acme", "t-end", task.EndCompleted, nil)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, task.ErrEnded):
				t.Errorf("end: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d instances ended the task, want 1", wins.Load())
	}
	if _, err := ss[2].Charge(context.Background(), task.Call{Tenant: "acme", ID: "t-end", Issuer: "iss", Subject: "orch"}); !errors.Is(err, task.ErrEnded) {
		t.Errorf("a call after the end: %v, want ErrEnded", err)
	}
	if ended.Load() != 0 {
		t.Errorf("OnEnd called %d times for a completion: the completing call records it", ended.Load())
	}
}

// Past its deadline, or idle, a task is ended by the sweep of one
// instance, once, whichever instances sweep.
func TestDeadlineAndIdleEndOnce(t *testing.T) {
	var mu sync.Mutex
	reasons := map[string][]string{}
	ss := instances(t, 3, task.Config{IdleTimeout: time.Second, SweepInterval: 50 * time.Millisecond, MaxTaskDuration: time.Hour},
		task.OnEnd(func(r task.Record) {
			mu.Lock()
			reasons[r.ID] = append(reasons[r.ID], r.Ended+" by "+r.EndedBy)
			mu.Unlock()
		}))
	r := &task.Record{Tenant: "acme", ID: "t-deadline", Declared: true, Issuer: "iss", Subject: "orch",
		Started: time.Now(), Deadline: time.Now().Add(300 * time.Millisecond), LastActive: time.Now()}
	if err := ss[0].Declare(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := ss[1].Charge(context.Background(), task.Call{Tenant: "acme", ID: "t-idle", Issuer: "iss", Subject: "agent", ClientChosen: true}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(reasons["t-deadline"]) == 0 || len(reasons["t-idle"]) == 0 {
			return fmt.Errorf("ended so far: %v", reasons)
		}
		return nil
	})
	// Let every sweep run again: none may end them a second time.
	for _, s := range ss {
		poll.Until(t, 10*time.Second, func() error {
			a, _ := s.View("acme", "t-deadline")
			b, _ := s.View("acme", "t-idle")
			if a.Ended == "" || b.Ended == "" {
				return fmt.Errorf("ends not seen yet: %q %q", a.Ended, b.Ended)
			}
			return nil
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons["t-deadline"]) != 1 || len(reasons["t-idle"]) != 1 ||
		reasons["t-deadline"][0][:8] != "deadline" || reasons["t-idle"][0][:4] != "idle" {
		t.Fatalf("ends %v, want one deadline and one idle", reasons)
	}
}

// The revoked events of a task whose ender died before recording them
// are emitted once the ender's claim is past its lease, by one of the
// instances, however slow its publish: the others see its claim and
// leave them. The record is confirmed after.
func TestUnrecordedEventsEmittedOnce(t *testing.T) {
	var emitted atomic.Int64
	emit := task.OnUnrecorded(func(_ context.Context, r task.Record) error {
		if len(r.Credentials) != 2 || r.Ended != task.EndCompleted {
			t.Errorf("emitting for %+v", r)
		}
		emitted.Add(1)
		time.Sleep(300 * time.Millisecond) // a slow publish, while the others sweep
		return nil
	})
	ss := instances(t, 3, task.Config{SweepInterval: 50 * time.Millisecond}, emit)
	ctx := context.Background()
	declare(t, ss[0], "t-out", 0)
	for _, jti := range []string{"j1", "j2"} {
		if _, err := ss[0].Charge(ctx, task.Call{Tenant: "acme", ID: "t-out", Issuer: "iss", Subject: "orch",
			Credential: &task.Credential{JTI: jti, Audience: "a", Expires: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The ender ends it and dies: it never records the events.
	r, err := ss[0].End(ctx, "acme", "t-out", task.EndCompleted, nil)
	if err != nil || !r.EventsPending || r.EventsClaimedBy != "enf-a" {
		t.Fatalf("end: %+v %v", r, err)
	}
	poll.Until(t, 30*time.Second, func() error {
		for _, s := range ss {
			if rec, _ := s.View("acme", "t-out"); rec.EventsPending {
				return fmt.Errorf("still pending at an instance, claimed by %s", rec.EventsClaimedBy)
			}
		}
		return nil
	})
	if n := emitted.Load(); n != 1 {
		t.Fatalf("emitted %d times, want once", n)
	}
}
