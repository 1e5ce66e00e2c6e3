package event

import (
	"testing"
	"time"
)

// TestDerivedIDKeepsTimeAndEntropy: the derived id sorts with IDSource's
// ids of the same millisecond's neighbours and carries exactly the
// entropy given, so two equal findings get one id and unequal ones two.
func TestDerivedIDKeepsTimeAndEntropy(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var src IDSource
	before := src.New(t0.Add(-time.Millisecond))
	after := src.New(t0.Add(time.Millisecond))
	e1 := [10]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	e2 := [10]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 11}
	a, b, c := DerivedID(t0, e1), DerivedID(t0, e1), DerivedID(t0, e2)
	if a != b {
		t.Fatalf("same input, ids %s and %s", a, b)
	}
	if a == c {
		t.Fatalf("different entropy, same id %s", a)
	}
	if len(a) != 26 || !(before < a && a < after) {
		t.Fatalf("id %s does not sort between %s and %s", a, before, after)
	}
	// The time part is the first 10 characters, as IDSource writes it.
	var fresh IDSource
	if got, want := a[:10], fresh.New(t0)[:10]; got != want {
		t.Fatalf("time part %s, want %s", got, want)
	}
}
