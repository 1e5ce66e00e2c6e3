package proc

import (
	"testing"
	"time"
)

func TestCPUTimeCountsThisProcessesWork(t *testing.T) {
	// Spin until the meter has counted 100 ms of this process's CPU: on a
	// busy machine a spin of fixed wall time may get far less CPU than
	// that, so wall time bounds only how long the test waits for it.
	m := StartCPU("self", "")
	deadline := time.Now().Add(30 * time.Second)
	x := 0
	used := m.Used()
	for used[0] < 100*time.Millisecond && time.Now().Before(deadline) {
		for range 100000 {
			x++
		}
		used = m.Used()
	}
	if used[0] < 100*time.Millisecond || used[1] != -1 {
		t.Fatalf("used = %v after %d loops in 30s; want ≥ 100ms, and -1 for the skipped pid", used, x)
	}
}
