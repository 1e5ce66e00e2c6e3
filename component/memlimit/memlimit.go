// Package memlimit gives a component's process the soft memory limit its
// configuration names: the Go runtime collects as the heap nears the
// limit instead of growing past what the process was given (a
// container's memory limit, a systemd MemoryMax).
package memlimit

import (
	"errors"
	"os"
	"runtime/debug"
)

// MiB is a soft memory limit in MiB, as a component's configuration
// gives it: 0 takes the component's default, -1 means none (the
// runtime's defaults). GOMEMLIMIT, when set, takes precedence.
type MiB int

// None is the value that sets no limit.
const None MiB = -1

// maxMiB is 1 TiB: beyond it the limit in bytes would not fit an int64.
const maxMiB MiB = 1 << 20

// Validate refuses what is neither a limit nor None.
func (m MiB) Validate() error {
	if m < None || m > maxMiB {
		return errors.New("memory_limit_mib must be in 1-1048576, or -1 for none")
	}
	return nil
}

// Apply sets the limit, unless GOMEMLIMIT is set (the runtime has read
// it) or m sets none, and reports whether it did. With collectUntil, and
// GOGC unset, collection waits for the limit (GOGC=off): for a process
// whose live heap is a small part of its limit, GOGC=100 would collect
// every time the heap doubled, dozens of cycles a second under load,
// while memory stayed far below what it was given.
func (m MiB) Apply(collectUntil bool) bool {
	if m <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetMemoryLimit(int64(m) << 20)
	if collectUntil && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
	}
	return true
}
