package correlator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// Lookbacks past the replay horizon. A new_value rule remembers a value
// for its lookback (30 days for the shipped new-actor rule), far longer
// than the stream is replayed at start (and than it is kept), so after a
// restart the engine would report every value last seen before the
// horizon as new again. The correlator keeps, in a JetStream key-value
// bucket whose keys live one lookback, the values such rules alerted on:
// an alert of one of them whose value the bucket holds is a value seen
// within the lookback, and is dropped; the key is then written again, as
// a sighting. Within one run the engine is authoritative and the bucket
// agrees with it (a key lives no longer than the engine's own group). Not
// covered: a value seen without pause for longer than the lookback since
// its alert, then a restart: it is reported new once more.

// lookbacks is the bucket and the rules it serves.
type lookbacks struct {
	kv    jetstream.KeyValue
	rules map[string]bool // ids of new_value rules with a lookback past the horizon
	log   *slog.Logger
}

// newLookbacks opens the bucket when rs has new_value rules whose lookback
// exceeds horizon; nil when none does.
func newLookbacks(ctx context.Context, js jetstream.JetStream, sc stream.Config, rs *detect.RuleSet, horizon time.Duration, log *slog.Logger) (*lookbacks, error) {
	ids, longest := longLookbacks(rs, horizon)
	if len(ids) == 0 {
		return nil, nil
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, stream.DetectLookbackConfig(sc, longest))
	if err != nil {
		return nil, fmt.Errorf("correlator: bucket %s: %w", stream.DetectLookback, err)
	}
	return &lookbacks{kv: kv, rules: ids, log: log}, nil
}

func longLookbacks(rs *detect.RuleSet, horizon time.Duration) (map[string]bool, time.Duration) {
	ids, longest := map[string]bool{}, time.Duration(0)
	for _, r := range rs.Rules() {
		if r.Correlation == detect.NewValue && r.Window > horizon {
			ids[r.ID] = true
			longest = max(longest, r.Window)
		}
	}
	return ids, longest
}

// key names an alert's rule, tenant and group (the value among them).
func lookbackKey(a *event.Event) string {
	h := sha256.New()
	h.Write([]byte(a.Tenant))
	for _, g := range a.Alert.Group {
		h.Write([]byte{0})
		h.Write([]byte(g.Field))
		h.Write([]byte{0})
		h.Write([]byte(g.Value))
	}
	return a.Alert.RuleID + "." + hex.EncodeToString(h.Sum(nil)[:16])
}

// known reports whether a's value was alerted on within its lookback, and
// then records the sighting. It fails open: when the bucket cannot be
// read, the alert stands.
func (l *lookbacks) known(ctx context.Context, a *event.Event) bool {
	if l == nil || a.Alert == nil || !l.rules[a.Alert.RuleID] {
		return false
	}
	key := lookbackKey(a)
	if _, err := l.kv.Get(ctx, key); err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			l.log.Warn("lookback bucket unreadable; the alert stands", "alert", a.ID, "err", err)
		}
		return false
	}
	l.remember(ctx, a)
	return true
}

// remember records that a's value was seen now.
func (l *lookbacks) remember(ctx context.Context, a *event.Event) {
	if l == nil || a.Alert == nil || !l.rules[a.Alert.RuleID] {
		return
	}
	if _, err := l.kv.Put(ctx, lookbackKey(a), []byte(a.ID)); err != nil {
		// The alert is recorded; only a later restart may repeat it.
		l.log.Warn("lookback not remembered", "alert", a.ID, "err", err)
	}
}
