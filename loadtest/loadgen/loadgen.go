// Package loadgen drives a target at a fixed rate (open loop) or as fast as
// a fixed number of clients can go (closed loop), and summarises latencies.
//
// Open-loop sends are scheduled on a clock and each latency is measured
// from the request's scheduled time, not from when it was actually sent,
// so a target that stalls is charged for the requests queued behind the
// stall (no coordinated omission). The time from actual send is kept too,
// as the service time.
package loadgen

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sender sends one request and reports whether it got the expected answer.
type Sender func(ctx context.Context) error

// Result is what one run measured.
type Result struct {
	// Latency is each completed request's time from its scheduled send to
	// its answer, sorted. In a closed loop it equals Service.
	Latency []time.Duration
	// Service is each completed request's time from its actual send.
	Service []time.Duration
	// Errors counts requests that failed or got an unexpected answer;
	// FirstErr is the first of them.
	Errors   int64
	FirstErr error
	// Dropped counts open-loop sends skipped because MaxInFlight requests
	// were already outstanding: the target had fallen hopelessly behind.
	Dropped int64
	// Elapsed is the run's wall time, from the first send to the last answer.
	Elapsed time.Duration
}

// OK is the number of requests answered as expected.
func (r Result) OK() int { return len(r.Latency) - int(r.Errors) }

// Throughput is expected answers per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK()) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0..1) of Latency, nearest rank.
func (r Result) Quantile(q float64) time.Duration { return quantile(r.Latency, q) }

// ServiceQuantile returns the q-quantile (0..1) of Service, nearest rank.
func (r Result) ServiceQuantile(q float64) time.Duration { return quantile(r.Service, q) }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// collector gathers per-request samples from concurrent senders.
type collector struct {
	mu       sync.Mutex
	latency  []time.Duration
	service  []time.Duration
	errors   atomic.Int64
	firstErr error
}

func (c *collector) add(lat, svc time.Duration, err error) {
	c.mu.Lock()
	c.latency = append(c.latency, lat)
	c.service = append(c.service, svc)
	if err != nil && c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
	if err != nil {
		c.errors.Add(1)
	}
}

func (c *collector) result(elapsed time.Duration, dropped int64) Result {
	slices.Sort(c.latency)
	slices.Sort(c.service)
	return Result{Latency: c.latency, Service: c.service, Errors: c.errors.Load(), FirstErr: c.firstErr,
		Dropped: dropped, Elapsed: elapsed}
}

// OpenLoop sends at rate requests per second for d, each on its own
// goroutine, at most maxInFlight outstanding. It returns when every request
// sent has been answered. The scheduler wakes at the runtime's timer
// granularity (about 1 ms on Linux) and then sends everything that is due,
// so arrivals come in small bursts; their wait counts in Latency.
func OpenLoop(ctx context.Context, send Sender, rate float64, d time.Duration, maxInFlight int) Result {
	n := int(rate * d.Seconds())
	c := &collector{latency: make([]time.Duration, 0, n), service: make([]time.Duration, 0, n)}
	sem := make(chan struct{}, max(1, maxInFlight))
	var wg sync.WaitGroup
	var dropped int64
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
		default:
			dropped++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			err := send(ctx)
			done := time.Now()
			c.add(done.Sub(at), done.Sub(sent), err)
			<-sem
		}()
	}
	wg.Wait()
	return c.result(time.Since(start), dropped)
}

// ClosedLoop runs clients senders back to back for d and returns what they
// measured; Throughput is then the target's saturation throughput.
func ClosedLoop(ctx context.Context, send Sender, clients int, d time.Duration) Result {
	c := &collector{}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				sent := time.Now()
				// The run's deadline must not cut the last request short:
				// it would count as an error, not as a slow answer.
				err := send(context.WithoutCancel(ctx))
				took := time.Since(sent)
				c.add(took, took, err)
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return c.result(time.Since(start), 0)
}
