package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
)

// scanRange is how many seqs of a chain one query reads: the server sorts
// a range alone, so its memory is bounded by it.
var scanRange uint64 = 1 << 18

// maxSegment bounds the links a segment holds when a chain goes this long
// without a checkpoint: memory stays bounded even then.
var maxSegment = 1 << 18

// segments checks chains one segment at a time: the links from one
// checkpoint to the next, read in seq order, checked with the last link
// of the segment before (so the link into each segment is checked too),
// then dropped. Memory is bounded by the largest segment, not the chain.
//
// A segment that is not clean stops it: the caller then checks the whole
// selection at once, which attributes what it finds across segments and
// chains (a row moved over a checkpoint, one copied from another chain).
type segments struct {
	ch        *chstore.Client
	opts      chain.Options // keys only: witnesses go per segment
	witnesses map[[2]string][]*event.Event
	rep       chain.Report
	held      int           // the most links held at once
	checked   time.Duration // in chain.CheckLinks
}

// checkSegmented checks chains a segment at a time; clean is false when
// a segment was not, and the report is then incomplete.
func checkSegmented(ctx context.Context, ch *chstore.Client, chains []chainRef, witnesses []*event.Event, o chain.Options) (s *segments, clean bool, err error) {
	s = &segments{ch: ch, opts: o, witnesses: map[[2]string][]*event.Event{}}
	for _, w := range witnesses {
		k := [2]string{w.Instance, w.Epoch}
		s.witnesses[k] = append(s.witnesses[k], w)
	}
	for _, c := range chains {
		if err := s.check(ctx, c); errors.Is(err, errNotClean) {
			return s, false, nil
		} else if err != nil {
			return s, false, err
		}
		s.rep.Chains++
	}
	return s, true, nil
}

// errNotClean ends the streaming check at the first finding.
var errNotClean = errors.New("verify: a segment is not clean")

// check verifies one chain; errNotClean when a segment is not clean.
func (s *segments) check(ctx context.Context, c chainRef) error {
	cps := make(chan *event.Event, 64)
	scanCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpErr := make(chan error, 1)
	go func() {
		defer close(cps)
		cpErr <- s.ch.ScanChainCheckpoints(scanCtx, c.instance, c.epoch, func(e *event.Event) error {
			select {
			case cps <- e:
				return nil
			case <-scanCtx.Done():
				return scanCtx.Err()
			}
		})
	}()
	var (
		buf     []chain.Link
		carry   *chain.Link // the last link of the segment before
		closeAt uint64      // the seq of the checkpoint that ends the segment; 0 none yet
		nextCP  *event.Event
	)
	flush := func(last bool) error {
		if len(buf) == 0 {
			return nil
		}
		// Taken first: the check sorts and compacts the links it is given
		// in place, so after it buf's tail may be a cleared copy.
		l := buf[len(buf)-1]
		if err := s.segment(c, carry, buf, last); err != nil {
			return err
		}
		carry, buf, closeAt = &l, buf[:0], 0
		return nil
	}
	visit := func(l chain.Link) error {
		// Never between two copies of one seq: a copy that differs from
		// the carried one would be checked against nothing.
		if closeAt != 0 && l.Seq > closeAt || len(buf) >= maxSegment && l.Seq != buf[len(buf)-1].Seq {
			if err := flush(false); err != nil {
				return err
			}
		}
		if l.Kind == event.KindCheckpoint {
			// Checkpoints come whole from their own stream, in the same
			// order: the one for this link, matched by hash.
			for nextCP == nil || nextCP.Seq < l.Seq {
				e, ok := <-cps
				if !ok {
					break
				}
				nextCP = e
			}
			if nextCP != nil && nextCP.Seq == l.Seq && chain.Of(nextCP) == l.Hash {
				l.Event = nextCP
			}
			closeAt = l.Seq
		}
		buf = append(buf, l)
		s.held = max(s.held, len(buf)+1)
		return nil
	}
	var err error
	for from := uint64(0); from <= c.last && err == nil; from += scanRange {
		err = s.ch.ScanChainLinks(ctx, c.instance, c.epoch, from, from+scanRange-1, visit)
	}
	if err == nil {
		err = flush(true)
	}
	cancel()
	for range cps { // unblock the checkpoint reader
	}
	if e := <-cpErr; err == nil && e != nil && !errors.Is(e, context.Canceled) {
		err = fmt.Errorf("verify: read checkpoints: %w", e)
	}
	return err
}

// segment checks one segment's links after carry; the last segment of a
// chain also meets the witnesses beyond it.
func (s *segments) segment(c chainRef, carry *chain.Link, links []chain.Link, last bool) error {
	rows := links
	from := links[0].Seq
	if carry != nil {
		rows = append([]chain.Link{*carry}, links...)
	}
	var ws []*event.Event
	for _, w := range s.witnesses[[2]string{c.instance, c.epoch}] {
		if w.Seq >= from && (last || w.Seq <= links[len(links)-1].Seq) {
			ws = append(ws, w)
		}
	}
	o := s.opts
	o.Witnesses = ws
	if carry != nil {
		o.From = map[chain.ChainID]uint64{{Instance: c.instance, Epoch: c.epoch}: carry.Seq + 1}
	}
	start := time.Now()
	rep, err := chain.CheckLinks(rows, o)
	s.checked += time.Since(start)
	if err != nil {
		return err
	}
	for _, f := range rep.Findings {
		// The carry's own chain start reads as deleted: not a finding.
		if carry == nil || f.Seq > carry.Seq {
			return errNotClean
		}
	}
	s.rep.Events += rep.Events
	s.rep.Checkpoints += rep.Checkpoints
	if carry != nil {
		s.rep.Events--
		if carry.Kind == event.KindCheckpoint {
			s.rep.Checkpoints--
		}
	}
	return nil
}
