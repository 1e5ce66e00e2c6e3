package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPUTime is the CPU (user and system) a process has used so far; pid
// "self" is this one.
func CPUTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// CPUMeter measures the CPU a set of processes uses over a run.
type CPUMeter struct {
	pids  []string
	start []time.Duration
}

// StartCPU notes the processes' CPU so far; pids with "" are skipped.
func StartCPU(pids ...string) *CPUMeter {
	m := &CPUMeter{pids: pids, start: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		if pid != "" {
			m.start[i], _ = CPUTime(pid)
		}
	}
	return m
}

// Used is each process's CPU since StartCPU; -1 for a skipped or
// unreadable one.
func (m *CPUMeter) Used() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		out[i] = -1
		if pid == "" {
			continue
		}
		if now, err := CPUTime(pid); err == nil {
			out[i] = now - m.start[i]
		}
	}
	return out
}
