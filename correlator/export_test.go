package correlator

import "time"

// SetFlushTimeout shortens how long a batch waits for its alerts, so a
// test sees a failed batch redelivered in seconds; it returns the undo.
func SetFlushTimeout(d time.Duration) func() {
	old := flushTimeout
	flushTimeout = d
	return func() { flushTimeout = old }
}
