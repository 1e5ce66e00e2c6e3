// Package spool is the enforcer's local write-ahead log for audit events
// that JetStream could not take in time. Appends are group-committed: every
// caller waiting at the same moment shares one write and one fsync, and
// returns only once its records are on disk. The publisher replays records
// in order when JetStream is back, then acknowledges them here, so a crash
// at any point loses nothing (records acknowledged late are republished,
// and JetStream drops the copies by message id).
//
// On disk: segment files NNNNNNNNNNNNNNNNNNNN.seg holding records
// [u32 length][u32 crc32c][payload], and "cursor", the offset of the first
// unacknowledged record.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Errors.
var (
	ErrFull    = errors.New("spool: full")
	ErrClosed  = errors.New("spool: closed")
	ErrCorrupt = errors.New("spool: corrupt record")
)

// Config bounds a spool.
type Config struct {
	// Dir holds the segment files; it must be on a local disk.
	Dir string `yaml:"dir"`
	// MaxBytes bounds unacknowledged records on disk. Default 256 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is where a new segment file starts. Default 16 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 16 << 20
	}
}

const headerLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Position locates a record: the segment and the offset just past it.
type Position struct {
	Segment uint64
	Offset  int64
}

// Spool is a durable FIFO of records. Appends may come from any goroutine;
// one reader (the replayer) calls Next and Ack.
type Spool struct {
	cfg Config

	mu       sync.Mutex
	cond     *sync.Cond // signals the flusher: pending work or close
	pending  []*batch
	closed   bool
	size     int64 // bytes appended and not yet acknowledged
	writeSeg uint64
	writeOff int64
	w        *os.File

	ackSeg uint64 // the persisted cursor
	ackOff int64

	readMu  sync.Mutex
	readSeg uint64
	readOff int64
	r       *os.File
	rbuf    *bufio.Reader
	done    chan struct{}
}

type batch struct {
	records [][]byte
	bytes   int64
	err     chan error
}

// Open opens or creates the spool in cfg.Dir and recovers its state: a torn
// record at the end of the last segment (a crash mid-write) is cut off.
func Open(cfg Config) (*Spool, error) {
	cfg.SetDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("spool: dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{cfg: cfg, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	s.readSeg, s.readOff, err = s.loadCursor()
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		segs = []uint64{max(s.readSeg, 1)}
	}
	if s.readSeg < segs[0] {
		s.readSeg, s.readOff = segs[0], 0
	}
	s.ackSeg, s.ackOff = s.readSeg, s.readOff
	last := segs[len(segs)-1]
	end, err := recoverTail(s.segPath(last))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.segPath(last), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.w, s.writeSeg, s.writeOff = f, last, end
	for _, seg := range segs {
		if seg < s.readSeg {
			continue
		}
		fi, err := os.Stat(s.segPath(seg))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.size += fi.Size()
		if seg == s.readSeg {
			s.size -= s.readOff
		}
	}
	go s.flusher()
	return s, nil
}

// recoverTail returns the end of the last whole, intact record of a segment.
func recoverTail(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var off int64
	for {
		rec, err := readRecord(r)
		if err != nil {
			return off, nil // EOF, torn or corrupt tail: keep what precedes
		}
		off += int64(headerLen + len(rec))
	}
}

func readRecord(r *bufio.Reader) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n > 64<<20 {
		return nil, ErrCorrupt
	}
	rec := make([]byte, n)
	if _, err := io.ReadFull(r, rec); err != nil {
		return nil, err
	}
	if crc32.Checksum(rec, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, ErrCorrupt
	}
	return rec, nil
}

// Append writes records durably, in order, and returns once they are
// fsynced; it fails with ErrFull, leaving nothing written, when they do
// not fit.
func (s *Spool) Append(records ...[]byte) error { return s.Enqueue(records...)() }

// Enqueue queues records behind every record queued before and returns a
// wait for their fsync. Callers that must order their records across
// goroutines enqueue under their own lock and wait outside it.
func (s *Spool) Enqueue(records ...[]byte) (wait func() error) {
	b := &batch{records: records, err: make(chan error, 1)}
	for _, r := range records {
		b.bytes += int64(headerLen + len(r))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return func() error { return ErrClosed }
	}
	if s.size+b.bytes > s.cfg.MaxBytes {
		return func() error { return ErrFull }
	}
	s.size += b.bytes
	s.pending = append(s.pending, b)
	s.cond.Signal()
	return func() error { return <-b.err }
}

// Rewind makes Next start again at the oldest unacknowledged record, after
// a delivery attempt that failed.
func (s *Spool) Rewind() {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
	s.readSeg, s.readOff = s.ackSeg, s.ackOff
}

// flusher writes and fsyncs pending batches, all of them at once.
func (s *Spool) flusher() {
	defer close(s.done)
	var buf []byte
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.cond.Wait()
		}
		group := s.pending
		s.pending = nil
		closed := s.closed
		s.mu.Unlock()
		if len(group) == 0 && closed {
			return
		}
		buf = buf[:0]
		for _, b := range group {
			for _, r := range b.records {
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(r)))
				buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
				buf = append(buf, r...)
			}
		}
		err := s.write(buf)
		if err != nil {
			s.mu.Lock()
			for _, b := range group {
				s.size -= b.bytes
			}
			s.mu.Unlock()
		}
		for _, b := range group {
			b.err <- err
		}
	}
}

func (s *Spool) write(buf []byte) error {
	if s.writeOff > 0 && s.writeOff+int64(len(buf)) > s.cfg.SegmentBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("spool: write: %w", err)
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.mu.Lock()
	s.writeOff += int64(len(buf))
	s.mu.Unlock()
	return nil
}

func (s *Spool) rotate() error {
	next := s.writeSeg + 1
	f, err := os.OpenFile(s.segPath(next), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	s.w.Close()
	s.mu.Lock()
	s.w, s.writeSeg, s.writeOff = f, next, 0
	s.mu.Unlock()
	return nil
}

// Len is the number of bytes appended and not yet acknowledged.
func (s *Spool) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Next returns the oldest unacknowledged record not yet returned, and the
// position to acknowledge it with; io.EOF when the reader has caught up.
func (s *Spool) Next() ([]byte, Position, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		if s.r == nil {
			f, err := os.Open(s.segPath(s.readSeg))
			if errors.Is(err, os.ErrNotExist) {
				return nil, Position{}, io.EOF
			}
			if err != nil {
				return nil, Position{}, fmt.Errorf("spool: %w", err)
			}
			if _, err := f.Seek(s.readOff, io.SeekStart); err != nil {
				f.Close()
				return nil, Position{}, fmt.Errorf("spool: %w", err)
			}
			s.r, s.rbuf = f, bufio.NewReaderSize(f, 64<<10)
		}
		s.mu.Lock()
		writeSeg, writeOff := s.writeSeg, s.writeOff
		s.mu.Unlock()
		if s.readSeg == writeSeg && s.readOff >= writeOff {
			return nil, Position{}, io.EOF // only fsynced records are read
		}
		if s.readSeg < writeSeg {
			fi, err := s.r.Stat()
			if err == nil && s.readOff >= fi.Size() {
				s.r.Close()
				s.r = nil
				s.readSeg, s.readOff = s.readSeg+1, 0
				continue
			}
		}
		rec, err := readRecord(s.rbuf)
		if err != nil {
			return nil, Position{}, fmt.Errorf("%w at segment %d offset %d: %v", ErrCorrupt, s.readSeg, s.readOff, err)
		}
		s.readOff += int64(headerLen + len(rec))
		return rec, Position{s.readSeg, s.readOff}, nil
	}
}

// Ack records that every record up to p was delivered: the cursor is
// persisted and wholly delivered segments are deleted. The cursor is not
// fsynced: after a crash a few delivered records may be delivered again,
// which JetStream's de-duplication absorbs.
func (s *Spool) Ack(p Position) error {
	tmp := filepath.Join(s.cfg.Dir, "cursor.tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", p.Segment, p.Offset)), 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.cfg.Dir, "cursor")); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var freed int64
	for seg := s.ackSeg; seg < p.Segment; seg++ {
		if fi, err := os.Stat(s.segPath(seg)); err == nil {
			freed += fi.Size()
		}
		_ = os.Remove(s.segPath(seg))
	}
	freed += p.Offset - s.ackOff
	s.ackSeg, s.ackOff = p.Segment, p.Offset
	s.mu.Lock()
	s.size -= freed
	s.mu.Unlock()
	return nil
}

// Close stops the flusher after it has written what is pending.
func (s *Spool) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Signal()
	s.mu.Unlock()
	<-s.done
	s.readMu.Lock()
	if s.r != nil {
		s.r.Close()
	}
	s.readMu.Unlock()
	return s.w.Close()
}

func (s *Spool) segPath(n uint64) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d.seg", n))
}

func (s *Spool) segments() ([]uint64, error) {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func (s *Spool) loadCursor() (uint64, int64, error) {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, "cursor"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	var seg uint64
	var off int64
	if _, err := fmt.Sscanf(string(data), "%d %d", &seg, &off); err != nil {
		return 0, 0, fmt.Errorf("spool: bad cursor file: %w", err)
	}
	return seg, off, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync dir: %w", err)
	}
	return nil
}
