package contract

import (
	"fmt"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/testkit/poll"
)

// TestRevokedJTIAfterNATSRestart: a jti revoked right after NATS comes
// back is refused within a second, though the backend's connection is up
// again seconds before its watch delivers anything (its consumer is
// recreated only when heartbeats are missed): the copy is not trusted
// until the watch is confirmed current, and introspection decides.
func TestRevokedJTIAfterNATSRestart(t *testing.T) {
	r := newRig(t, nil)
	tok := r.mint("task-a")
	if s, code := r.call(tok.Raw, "req-1", "127.0.0.1:1000"); s != 200 {
		t.Fatalf("fresh credential: %d %s", s, code)
	}
	r.nats.Restart()
	poll.Until(t, 30*time.Second, func() error {
		if !r.js.Conn().IsConnected() {
			return fmt.Errorf("test connection not back")
		}
		return nil
	})
	r.revoke(stream.JTIRevocationKey(tok.JTI), stream.Revocation{Tenant: "acme", TaskID: "task-a", JTI: tok.JTI, Reason: "revoked", RevokedAt: time.Now(), Until: tok.Expires})
	r.active.Store(false) // what the enforcer's introspection answers from now on
	poll.Until(t, time.Second, func() error {
		if s, code := r.call(tok.Raw, "req-2", "127.0.0.1:1000"); s == 200 {
			return fmt.Errorf("revoked jti served (%s), revocations ready %v", code, r.v.RevocationsReady())
		}
		return nil
	})
	// Once the watch catches up, the bucket decides again, not
	// introspection.
	poll.Until(t, 30*time.Second, func() error {
		if !r.v.RevocationsReady() {
			return fmt.Errorf("revocations not watched again")
		}
		return nil
	})
	hits := r.introHit.Load()
	if s, code := r.call(tok.Raw, "req-3", "127.0.0.1:1000"); s != 401 || code != "credential_revoked" || r.introHit.Load() != hits {
		t.Fatalf("after the watch caught up: %d %q, %d introspections", s, code, r.introHit.Load()-hits)
	}
}
