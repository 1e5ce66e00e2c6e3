package faults

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rampart-io/rampart/loadtest/workload"
)

// fleetSize is the enforcer fleet of the throughput benchmark.
const fleetSize = 3

// BenchmarkFleetCalls is the enforcer fleet's view of JetStream: allowed
// tool calls per second through three enforcers in this process, each
// recording every request and decision before it forwards, against a
// three-node JetStream cluster (deploy/cluster, every stream replicated
// three ways) and, as the baseline of the same run, one JetStream server.
// The clients, enforcers and NATS share the machine's cores, so the
// figure to read is the ratio between the two.
//
//	go test -run '^$' -bench FleetCalls -benchtime 6000x -count 3 ./internal/faults/
func BenchmarkFleetCalls(b *testing.B) {
	fleets := []struct {
		name  string
		start func(*testing.B) (*rig, []string)
	}{
		{"nats=single-node", func(b *testing.B) (*rig, []string) {
			r := newRig(b)
			var urls []string
			for i := range fleetSize {
				urls = append(urls, r.startEnforcer(fmt.Sprintf("enf-bench-%d", i), "spool"))
			}
			return r, urls
		}},
		{"nats=three-node", func(b *testing.B) (*rig, []string) {
			r := newClusterRig(b)
			var urls []string
			for i := range fleetSize {
				urls = append(urls, r.startClusterEnforcer(fmt.Sprintf("enf-bench-%d", i)))
			}
			return r, urls
		}},
	}
	for _, f := range fleets {
		r, urls := f.start(b)
		b.Run(f.name, func(b *testing.B) { fleetCalls(b, r, urls) })
	}
}

// fleetCalls sends b.N allowed calls spread evenly over urls, 16 sessions
// at a time to each, and fails on any answer but 200.
func fleetCalls(b *testing.B, r *rig, urls []string) {
	const perEnforcer = 16
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: perEnforcer}}
	batches := make([][]workload.Call, len(urls))
	for i := range b.N {
		e := i % len(urls)
		caller := workload.Caller{Tenant: "acme", Principal: "user:alice", Actors: []string{"agent:planner"},
			Session: fmt.Sprintf("bench-%d-%d", e, i/len(urls)%perEnforcer)}
		batches[e] = append(batches[e], workload.Call{Caller: caller, RPCMethod: "tools/call", Tool: "search", Args: map[string]any{"q": i}})
	}
	results := make([][]workload.Result, len(urls))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for e, url := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &workload.Driver{URL: url + "/mcp", Issuer: r.issuer, Client: client}
			results[e] = d.Run(context.Background(), batches[e], perEnforcer)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, rs := range results {
		for _, res := range rs {
			if res.Status != http.StatusOK {
				b.Fatalf("a call got %d (request %s): the fleet must allow every benchmark call", res.Status, res.RequestID)
			}
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
}
