package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T, dir string, maxBytes, segBytes int64) *Spool {
	t.Helper()
	s, err := Open(Config{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func drain(t *testing.T, s *Spool) []string {
	t.Helper()
	var out []string
	for {
		rec, pos, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(rec))
		if err := s.Ack(pos); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOrderAcrossSegmentsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 256) // tiny segments: many rotations
	var want []string
	for i := 0; i < 100; i++ {
		r := fmt.Sprintf("record-%03d", i)
		want = append(want, r)
		if err := s.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	// Read half, acknowledge it, and "crash".
	var got []string
	for len(got) < 50 {
		rec, pos, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(rec))
		if err := s.Ack(pos); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, dir, 1<<20, 256)
	defer s.Close()
	got = append(got, drain(t, s)...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after draining", s.Len())
	}
	segs, _ := s.segments()
	if len(segs) > 1 {
		t.Fatalf("%d segments left after draining", len(segs))
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1<<20)
	for _, r := range []string{"one", "two"} {
		if err := s.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A crash mid-write leaves half a record.
	seg := filepath.Join(dir, fmt.Sprintf("%020d.seg", 1))
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 9, 1, 2, 3, 4, 'p', 'a'})
	f.Close()
	s = open(t, dir, 1<<20, 1<<20)
	defer s.Close()
	if err := s.Append([]byte("three")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(drain(t, s)); got != "[one two three]" {
		t.Fatalf("got %s", got)
	}
}

func TestFullRefusesWithoutWriting(t *testing.T) {
	s := open(t, t.TempDir(), 100, 1<<20)
	defer s.Close()
	if err := s.Append(make([]byte, 80)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(make([]byte, 20)); !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	drain(t, s)
	if err := s.Append(make([]byte, 20)); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

func TestConcurrentAppendsKeepEachCallersOrder(t *testing.T) {
	s := open(t, t.TempDir(), 1<<24, 4096)
	defer s.Close()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if err := s.Append([]byte(fmt.Sprintf("%d:%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := map[int]int{}
	n := 0
	for _, r := range drain(t, s) {
		var w, i int
		fmt.Sscanf(r, "%d:%d", &w, &i)
		if prev, ok := last[w]; ok && i != prev+1 {
			t.Fatalf("writer %d: %d after %d", w, i, prev)
		}
		last[w] = i
		n++
	}
	if n != 1600 {
		t.Fatalf("%d records", n)
	}
}

// BenchmarkAppend measures group commit: parallel appenders share fsyncs.
func BenchmarkAppend(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 1000)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
