// Package poll waits in tests for something that happens asynchronously
// (an event in JetStream, a row in ClickHouse, a reload) by asking again
// until a deadline, never by sleeping a guessed time.
package poll

import (
	"testing"
	"time"
)

// Interval is how long Until waits between two asks.
const Interval = 50 * time.Millisecond

// Until calls cond until it returns nil, every Interval, and fails the
// test with cond's last error once timeout has passed. cond's error says
// what is still missing, so the failure says it too.
func Until(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// Wait is Until for helpers that return the failure instead: nil once
// cond returns nil, cond's last error once timeout has passed.
func Wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(Interval)
	}
}
