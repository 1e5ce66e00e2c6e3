package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestValidate(t *testing.T) {
	for m, ok := range map[MiB]bool{-2: false, None: true, 0: true, 40: true, 1 << 20: true, 1<<20 + 1: false, 1 << 43: false} {
		if err := m.Validate(); (err == nil) != ok {
			t.Errorf("MiB(%d).Validate() = %v", m, err)
		}
	}
}

// A limit is applied unless GOMEMLIMIT is set; GOGC set keeps collection
// as it says.
func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	reset := func() { debug.SetMemoryLimit(math.MaxInt64); debug.SetGCPercent(100) }

	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	reset()
	if !MiB(64).Apply(true) || debug.SetMemoryLimit(-1) != 64<<20 || debug.SetGCPercent(-1) != -1 {
		t.Fatal("a limit of 64 MiB, collecting at it: not applied")
	}
	reset()
	if !MiB(64).Apply(false) || debug.SetGCPercent(-1) != 100 {
		t.Fatal("a limit without collectUntil changed GOGC")
	}
	reset()
	if None.Apply(true) || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatal("None set a limit")
	}
	t.Setenv("GOGC", "50")
	reset()
	if !MiB(64).Apply(true) || debug.SetGCPercent(-1) != 100 {
		t.Fatal("GOGC set, collectUntil still turned collection off")
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	reset()
	if MiB(64).Apply(true) || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatal("GOMEMLIMIT set, the configured limit still applied")
	}
}
