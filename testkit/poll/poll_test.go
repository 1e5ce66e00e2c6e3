package poll_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-io/rampart/testkit/poll"
)

func TestWait(t *testing.T) {
	calls := 0
	err := poll.Wait(5*time.Second, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls, want nil after 3", err, calls)
	}
	// A condition that never holds ends with its last error, once the
	// timeout has passed, having been asked more than once.
	calls = 0
	err = poll.Wait(3*poll.Interval, func() error { calls++; return errors.New("never") })
	if err == nil || err.Error() != "never" || calls < 2 {
		t.Fatalf("Wait = %v after %d calls, want the last error after several", err, calls)
	}
}
