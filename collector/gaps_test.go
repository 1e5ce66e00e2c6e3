package collector

import "testing"

func TestGapsFlagSkippedSequenceNumbers(t *testing.T) {
	var g gaps
	ev := func(inst string, seq uint64) position { return position{chainID{inst, "e"}, seq} }
	steps := []struct {
		p    position
		want uint64
	}{
		{ev("a", 1), 0},
		{ev("a", 2), 0},
		{ev("a", 6), 3},  // 3, 4, 5 missing
		{ev("a", 4), 0},  // late or redelivered: not a new gap
		{ev("b", 40), 0}, // first sight mid-chain
		{ev("b", 41), 0},
		{ev("a", 7), 0},
		{position{chainID{"old", ""}, 9}, 0}, // unchained events are not tracked
	}
	for i, st := range steps {
		if got := g.observe(st.p); got != st.want {
			t.Fatalf("step %d: %d skipped, want %d", i, got, st.want)
		}
	}
}
