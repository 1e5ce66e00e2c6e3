package contract

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/backend"
	"github.com/rampart-io/rampart/schema/stream"
)

// BenchmarkRevocationPropagation: the time from a revocation's KV write
// to the first refusal of its credential at the backend, one revocation
// per iteration (go test -bench RevocationPropagation -benchtime 1000x).
// The baseline, from the same writes in the same run, is when a plain
// watch of the bucket on its own connection receives each: what the
// middleware adds is the ratio of the two.
func BenchmarkRevocationPropagation(b *testing.B) {
	r := newRig(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	raw, err := r.nats.JetStream().KeyValue(ctx, stream.Revocations)
	if err != nil {
		b.Fatal(err)
	}
	w, err := raw.WatchAll(ctx, jetstreamUpdatesOnly()...)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	arrived := make(chan struct{}, 1)
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			mu.Lock()
			seen[e.Key()] = time.Now()
			mu.Unlock()
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	}()
	toks := make([]string, b.N)
	jtis := make([]string, b.N)
	for i := range b.N {
		t := r.mint("task-bench")
		toks[i], jtis[i] = t.Raw, t.JTI
	}
	refusal := make([]time.Duration, 0, b.N)
	watch := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		key := stream.JTIRevocationKey(jtis[i])
		val, _ := json.Marshal(stream.Revocation{Tenant: "acme", JTI: jtis[i], Reason: "revoked", RevokedAt: time.Now()})
		start := time.Now()
		if _, err := r.kv.Put(ctx, key, val); err != nil {
			b.Fatal(err)
		}
		for {
			if _, code := r.call(toks[i], "", "127.0.0.1:1"); code == backend.CodeCredentialRevoked {
				break
			}
		}
		refusal = append(refusal, time.Since(start))
		for {
			mu.Lock()
			at, ok := seen[key]
			mu.Unlock()
			if ok {
				watch = append(watch, at.Sub(start))
				break
			}
			<-arrived
		}
	}
	b.StopTimer()
	p50, p99 := percentile(refusal, 50), percentile(refusal, 99)
	w50, w99 := percentile(watch, 50), percentile(watch, 99)
	b.ReportMetric(float64(p50.Microseconds()), "p50-refusal-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-refusal-µs")
	b.ReportMetric(float64(w50.Microseconds()), "p50-watch-µs")
	b.ReportMetric(float64(w99.Microseconds()), "p99-watch-µs")
	if w50 > 0 {
		b.ReportMetric(float64(p50)/float64(w50), "p50-ratio")
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func jetstreamUpdatesOnly() []jetstream.WatchOpt {
	return []jetstream.WatchOpt{jetstream.UpdatesOnly()}
}
