package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, .5, 0},
		{"one", ms(7), .99, 7 * time.Millisecond},
		{"median of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), .5, 5 * time.Millisecond},
		{"p90 of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), .9, 9 * time.Millisecond},
		{"max", ms(1, 2, 3), 1, 3 * time.Millisecond},
		{"min", ms(1, 2, 3), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("quantile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

// TestOpenLoopCounts checks that every scheduled send is made and every
// failure counted; it asserts no timings.
func TestOpenLoopCounts(t *testing.T) {
	var n atomic.Int64
	fail := errors.New("refused")
	send := func(context.Context) error {
		if n.Add(1)%4 == 0 {
			return fail
		}
		return nil
	}
	res := OpenLoop(context.Background(), send, 200, 250*time.Millisecond, 100)
	if len(res.Latency) != 50 || res.Dropped != 0 {
		t.Fatalf("completed %d, dropped %d; want 50 and 0", len(res.Latency), res.Dropped)
	}
	if res.Errors != 12 || !errors.Is(res.FirstErr, fail) || res.OK() != 38 {
		t.Errorf("errors %d (first %v), ok %d; want 12, %v, 38", res.Errors, res.FirstErr, res.OK(), fail)
	}
}

func TestClosedLoopStops(t *testing.T) {
	send := func(context.Context) error { time.Sleep(time.Millisecond); return nil }
	res := ClosedLoop(context.Background(), send, 4, 50*time.Millisecond)
	if res.OK() == 0 || res.Errors != 0 || res.Throughput() <= 0 {
		t.Errorf("ok %d, errors %d, throughput %v", res.OK(), res.Errors, res.Throughput())
	}
}
