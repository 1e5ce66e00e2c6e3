package main

import (
	"testing"
	"time"
)

func TestCPUTimeCountsThisProcessesWork(t *testing.T) {
	m := startCPU("self", "")
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	used := m.used()
	if used[0] < 100*time.Millisecond || used[1] != -1 {
		t.Fatalf("used = %v after spinning 300ms (%d loops); want ≥ 100ms, and -1 for the skipped pid", used, x)
	}
}
