package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer/policy"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/poll"
)

const (
	allowSearch = "id: w\nrules:\n  - {id: allow-search, match: 'tool == \"search\"', effect: allow}\n"
	allowShell  = "id: w\nrules:\n  - {id: allow-shell, match: 'tool == \"shell\"', effect: allow}\n"
	broken      = "id: w\nrules:\n  - {id: broken, match: 'tool ==', effect: allow}\n"
)

// events collects ReloadEvents for a test to wait on.
type events struct {
	mu  sync.Mutex
	evs []policy.ReloadEvent
}

func (e *events) add(ev policy.ReloadEvent) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }

// wait polls until an event satisfies ok, or fails the test at the deadline.
func (e *events) wait(t *testing.T, ok func(policy.ReloadEvent) bool) policy.ReloadEvent {
	t.Helper()
	var found policy.ReloadEvent
	poll.Until(t, 10*time.Second, func() error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ev := range e.evs {
			if ok(ev) {
				found = ev
				return nil
			}
		}
		return fmt.Errorf("no matching reload event among %d", len(e.evs))
	})
	return found
}

func effectOf(w *policy.Watcher, tool string) event.Effect {
	return w.Decide(context.Background(), &policy.Input{Tool: tool}).Effect
}

func TestWatcherPolls(t *testing.T) {
	for _, layout := range []string{"file", "directory"} {
		t.Run(layout, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			path := file
			if layout == "directory" {
				path = dir
			}
			write := func(s string) {
				// Rename into place, as a deployment should, so a poll never
				// reads half a file.
				tmp := filepath.Join(dir, ".p.yaml.tmp")
				if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, file); err != nil {
					t.Fatal(err)
				}
			}
			write(allowSearch)
			var evs events
			w, err := policy.NewWatcher(policy.WatchConfig{Path: path, Interval: 10 * time.Millisecond, OnReload: evs.add})
			if err != nil {
				t.Fatal(err)
			}
			first := w.Policy().Hash()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})

			write(allowShell)
			ok := evs.wait(t, func(ev policy.ReloadEvent) bool { return ev.OK && ev.OldHash == first })
			if ok.Manual || ok.NewHash != w.Policy().Hash() {
				t.Fatalf("event %+v, current %s", ok, w.Policy().Hash())
			}
			if effectOf(w, "shell") != event.EffectAllow || effectOf(w, "search") != event.EffectDeny {
				t.Fatal("the new policy is not deciding")
			}

			write(broken)
			bad := evs.wait(t, func(ev policy.ReloadEvent) bool { return !ev.OK })
			if !errors.Is(bad.Err, policy.ErrCompile) || bad.OldHash != ok.NewHash || bad.NewHash == bad.OldHash {
				t.Fatalf("failure event %+v", bad)
			}
			if w.Policy().Hash() != ok.NewHash || effectOf(w, "shell") != event.EffectAllow {
				t.Fatal("the last good policy is not deciding after a failed reload")
			}
		})
	}
}

func TestWatcherReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(allowSearch)
	var evs events
	w, err := policy.NewWatcher(policy.WatchConfig{Path: file, OnReload: evs.add})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		content    string
		wantErr    error
		wantShell  event.Effect
		wantSearch event.Effect
	}{
		{"unchanged", allowSearch, nil, event.EffectDeny, event.EffectAllow},
		{"new rules", allowShell, nil, event.EffectAllow, event.EffectDeny},
		{"broken keeps the last good", broken, policy.ErrCompile, event.EffectAllow, event.EffectDeny},
		{"back to the first", allowSearch, nil, event.EffectDeny, event.EffectAllow},
	}
	for i, tt := range tests {
		write(tt.content)
		err := w.Reload()
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Fatalf("%s: Reload = %v, want %v", tt.name, err, tt.wantErr)
		}
		if effectOf(w, "shell") != tt.wantShell || effectOf(w, "search") != tt.wantSearch {
			t.Fatalf("%s: wrong policy deciding", tt.name)
		}
		evs.mu.Lock()
		n, last := len(evs.evs), evs.evs[len(evs.evs)-1]
		evs.mu.Unlock()
		if n != i+1 || !last.Manual || last.OK != (tt.wantErr == nil) {
			t.Fatalf("%s: %d events, last %+v", tt.name, n, last)
		}
	}
}

func TestWatcherBudgetsSurviveReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	budget := "id: w\nrules:\n  - id: r\n    match: 'true'\n    effect: allow\n    reason: spend\n    obligations: {budget: {per: session, calls: 1, window: 1h}}\n"
	if err := os.WriteFile(file, []byte(budget), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := policy.NewWatcher(policy.WatchConfig{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	in := &policy.Input{Session: "s"}
	if d := w.Decide(context.Background(), in); d.Effect != event.EffectAllow {
		t.Fatalf("first call %+v", d)
	}
	if err := os.WriteFile(file, []byte(budget+"# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := w.Decide(context.Background(), in); d.Code != policy.DecisionBudgetExceeded {
		t.Fatalf("second call after reload %+v, want budget_exceeded", d)
	}
}

func TestNewWatcherFailsWithoutPolicy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.NewWatcher(policy.WatchConfig{Path: file}); !errors.Is(err, policy.ErrCompile) {
		t.Fatalf("NewWatcher = %v, want a compile error", err)
	}
}
