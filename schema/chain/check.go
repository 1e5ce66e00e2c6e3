package chain

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/rampart-io/rampart/schema/event"
)

// FindingKind says what happened to a sequence number of a chain.
type FindingKind string

// Kinds of findings. Unrecorded is not tampering: the enforcer said, in a
// signed checkpoint, that it could not record those events and refused the
// requests they belonged to.
const (
	Deleted      FindingKind = "deleted"       // absent, and later events prove it existed
	Modified     FindingKind = "modified"      // present, but not as it was chained
	Reordered    FindingKind = "reordered"     // present, but moved from another sequence number
	Truncated    FindingKind = "truncated"     // absent after the last stored event, proven by a witness checkpoint
	Spliced      FindingKind = "spliced"       // present, but copied from another chain or inserted
	BadSignature FindingKind = "bad_signature" // a checkpoint whose signature does not verify
	Unrecorded   FindingKind = "unrecorded"    // absent because the enforcer failed to record it
)

// Finding is one sequence number of one chain and what Check found there.
type Finding struct {
	Instance string
	Epoch    string
	Seq      uint64
	Kind     FindingKind
	Detail   string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s %s/%s seq %d: %s", f.Kind, f.Instance, f.Epoch, f.Seq, f.Detail)
}

// Options tune Check.
type Options struct {
	// Keys verify checkpoint signatures, by key id; without keys signatures
	// are not checked.
	Keys map[string]ed25519.PublicKey
	// Witnesses are checkpoints read from somewhere the stored events'
	// attacker could not reach (the JetStream stream): they prove how far
	// each chain reached, so a truncated tail is detected.
	Witnesses []*event.Event
}

// Report is the result of Check.
type Report struct {
	Events      int // distinct events examined
	Chains      int // instance epochs
	Checkpoints int // checkpoint events examined
	Findings    []Finding
}

// Clean reports whether nothing but unrecorded gaps was found.
func (r *Report) Clean() bool {
	for _, f := range r.Findings {
		if f.Kind != Unrecorded {
			return false
		}
	}
	return true
}

type chainKey struct{ instance, epoch string }

type row struct {
	e    *event.Event
	hash Hash
	prev Hash // e.Prev parsed; zero for the first event of a chain
}

// Check examines stored events (any order, redelivered copies allowed) and
// reports every sequence number that is not as its enforcer chained it.
// Events must include whole epochs: a chain read from the middle shows its
// unread beginning as deleted.
func Check(events []*event.Event, o Options) Report {
	var rep Report
	rows := make([]row, len(events))
	// Hashing is most of the work, and independent per event: spread it.
	workers := min(runtime.GOMAXPROCS(0), 1+len(events)/4096)
	var wg sync.WaitGroup
	chunk := (len(events) + workers - 1) / max(workers, 1)
	for lo := 0; lo < len(events); lo += chunk {
		hi := min(lo+chunk, len(events))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				e := events[i]
				rows[i] = row{e: e, hash: Of(e), prev: parse(e.Prev)}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(rows, func(a, b row) int {
		if c := cmp.Compare(a.e.Instance, b.e.Instance); c != 0 {
			return c
		}
		if c := cmp.Compare(a.e.Epoch, b.e.Epoch); c != 0 {
			return c
		}
		if c := cmp.Compare(a.e.Seq, b.e.Seq); c != 0 {
			return c
		}
		return bytes.Compare(a.hash[:], b.hash[:])
	})
	// Redelivered copies are identical: keep one.
	rows = slices.CompactFunc(rows, func(a, b row) bool {
		return a.hash == b.hash && a.e.Seq == b.e.Seq && a.e.Instance == b.e.Instance && a.e.Epoch == b.e.Epoch
	})
	rep.Events = len(rows)

	witnessed := map[chainKey][]*event.Event{}
	for _, w := range o.Witnesses {
		k := chainKey{w.Instance, w.Epoch}
		if w.Kind != event.KindCheckpoint || o.Keys != nil && VerifyCheckpoint(w, o.Keys) != nil {
			continue // an unverifiable witness proves nothing
		}
		witnessed[k] = append(witnessed[k], w)
	}
	x := &crossChain{rows: rows}
	for start := 0; start < len(rows); {
		k := chainKey{rows[start].e.Instance, rows[start].e.Epoch}
		end := start + 1
		for end < len(rows) && rows[end].e.Instance == k.instance && rows[end].e.Epoch == k.epoch {
			end++
		}
		c := checker{key: k, rows: rows[start:end], cross: x, keys: o.Keys}
		rep.Checkpoints += c.run(witnessed[k])
		rep.Findings = append(rep.Findings, c.findings...)
		delete(witnessed, k)
		rep.Chains++
		start = end
	}
	for k, ws := range witnessed { // witnessed chains with nothing stored
		c := checker{key: k, cross: x, keys: o.Keys}
		c.run(ws)
		rep.Findings = append(rep.Findings, c.findings...)
		rep.Chains++
	}
	return rep
}

// crossChain answers whether a row belongs to another chain; it indexes
// every row only when first asked, which clean data never does.
type crossChain struct {
	rows    []row
	once    bool
	ids     map[string]chainKey // event id -> a chain holding it; zero key when several
	hashIdx map[Hash]chainKey
}

func (x *crossChain) foreign(k chainKey, r row) bool {
	if !x.once {
		x.once = true
		x.ids = make(map[string]chainKey, len(x.rows))
		x.hashIdx = make(map[Hash]chainKey, len(x.rows))
		for _, r := range x.rows {
			rk := chainKey{r.e.Instance, r.e.Epoch}
			if have, ok := x.ids[r.e.ID]; ok && have != rk {
				x.ids[r.e.ID] = chainKey{}
			} else if !ok {
				x.ids[r.e.ID] = rk
			}
			x.hashIdx[r.hash] = rk
		}
	}
	if owner := x.ids[r.e.ID]; owner != k {
		return true // the same event id is stored in another chain
	}
	owner, ok := x.hashIdx[r.prev]
	return ok && r.e.Prev != "" && owner != k
}

func parse(s string) Hash {
	var h Hash
	if len(s) != len(Prefix)+2*len(h) {
		return h
	}
	for i := range h {
		h[i] = unhex(s[len(Prefix)+2*i])<<4 | unhex(s[len(Prefix)+2*i+1])
	}
	return h
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0
}

// checker examines one chain.
type checker struct {
	key      chainKey
	rows     []row // sorted by seq
	cross    *crossChain
	keys     map[string]ed25519.PublicKey
	uniq     []row // the version of each seq taken as stored, by seq
	findings []Finding
}

// get returns the stored version of seq.
func (c *checker) get(seq uint64) (row, bool) {
	i, ok := slices.BinarySearchFunc(c.uniq, seq, func(r row, s uint64) int { return cmp.Compare(r.e.Seq, s) })
	if !ok {
		return row{}, false
	}
	return c.uniq[i], true
}

func (c *checker) foreign(r row) bool { return c.cross.foreign(c.key, r) }

func (c *checker) add(seq uint64, kind FindingKind, format string, args ...any) {
	c.findings = append(c.findings, Finding{c.key.instance, c.key.epoch, seq, kind, fmt.Sprintf(format, args...)})
}

// linksFrom reports whether r follows the stored event at seq-1.
func (c *checker) linksFrom(r row, seq uint64) bool {
	if seq == 1 {
		return r.e.Prev == ""
	}
	p, ok := c.get(seq - 1)
	return ok && r.e.Prev != "" && r.prev == p.hash
}

func (c *checker) run(witnesses []*event.Event) (checkpoints int) {
	bySeq := map[uint64][]row{} // only sequence numbers with several versions
	seqs := make([]uint64, 0, len(c.rows))
	c.uniq = make([]row, 0, len(c.rows))
	for i, r := range c.rows {
		s := r.e.Seq
		if i > 0 && c.rows[i-1].e.Seq == s {
			bySeq[s] = append(bySeq[s], r)
			continue
		}
		seqs = append(seqs, s)
		c.uniq = append(c.uniq, r)
		if i+1 < len(c.rows) && c.rows[i+1].e.Seq == s {
			bySeq[s] = []row{r}
		}
	}

	// One version per sequence number: where copies disagree, keep the one
	// that links, and name the others.
	for _, s := range seqs {
		vs := bySeq[s]
		if len(vs) < 2 {
			continue
		}
		// The version that links both ways is the chained one.
		keep, best := 0, -1
		for i, v := range vs {
			score := 0
			if c.linksFrom(v, s) {
				score++
			}
			if next, ok := c.get(s + 1); ok && next.prev == v.hash {
				score++
			}
			if score > best {
				keep, best = i, score
			}
		}
		i, _ := slices.BinarySearchFunc(c.uniq, s, func(r row, s uint64) int { return cmp.Compare(r.e.Seq, s) })
		c.uniq[i] = vs[keep]
		for i, v := range vs {
			if i == keep {
				continue
			}
			if c.foreign(v) {
				c.add(s, Spliced, "a second event %s at this sequence number, copied from another chain", v.e.ID)
			} else {
				c.add(s, Spliced, "a second event %s at this sequence number", v.e.ID)
			}
		}
	}

	// Broken links: which rows do not follow their predecessor?
	var brokenIn []uint64
	for i, r := range c.uniq {
		s := r.e.Seq
		switch {
		case s == 1:
			if r.e.Prev != "" {
				brokenIn = append(brokenIn, s)
			}
		case i > 0 && c.uniq[i-1].e.Seq == s-1:
			if r.e.Prev == "" || r.prev != c.uniq[i-1].hash {
				brokenIn = append(brokenIn, s)
			}
		}
	}
	at := func(s uint64) row { r, _ := c.get(s); return r }
	// A row moved to another sequence number still hashes, with its
	// original number put back, to what its original successor expects.
	moved := map[uint64]uint64{} // current seq -> original seq
	if len(brokenIn) > 0 && len(brokenIn) <= 256 {
		var suspects []uint64
		for _, s := range brokenIn {
			for _, q := range []uint64{s - 1, s, s + 1} {
				if _, ok := c.get(q); ok && !slices.Contains(suspects, q) {
					suspects = append(suspects, q)
				}
			}
		}
		for _, s := range brokenIn {
			if at(s).e.Prev == "" {
				continue
			}
			want := at(s).prev
			for _, cand := range suspects {
				for _, orig := range suspects {
					if orig == cand {
						continue
					}
					r := *at(cand).e
					r.Seq = orig
					if Of(&r) == want {
						moved[cand] = orig
					}
				}
			}
		}
	}
	origins := map[uint64]bool{}
	for cur, orig := range moved {
		origins[orig] = true
		c.add(cur, Reordered, "event %s was chained at seq %d", at(cur).e.ID, orig)
	}

	// Attribute the remaining breaks.
	for _, s := range brokenIn {
		if _, isMoved := moved[s]; isMoved {
			continue
		}
		prev, hasPrev := c.get(s - 1)
		switch {
		case c.foreign(at(s)):
			c.add(s, Spliced, "event %s was chained elsewhere (prev %s)", at(s).e.ID, short(at(s).e.Prev))
		case hasPrev && moved[s-1] == 0 && (c.linksFrom(prev, s-1) || s-1 == 0) && !c.foreign(prev) && !origins[s-1]:
			// The predecessor is where it was chained but hashes differently:
			// it was edited after the fact.
			c.add(s-1, Modified, "event %s no longer hashes to what seq %d chained", prev.e.ID, s)
		case origins[s-1]:
			// Explained by a move into or out of seq s-1.
		case hasPrev && c.foreign(prev):
			// Explained by the splice just before.
		default:
			c.add(s, Modified, "event %s does not follow seq %d", at(s).e.ID, s-1)
		}
	}

	// Gaps: deleted, or unrecorded by the enforcer's own account.
	unrecorded := map[uint64]bool{}
	for _, r := range c.uniq {
		s := r.e.Seq
		if r.e.Kind != event.KindCheckpoint {
			continue
		}
		checkpoints++
		if c.keys != nil {
			signed := *r.e
			if orig, ok := moved[s]; ok {
				signed.Seq = orig // it was signed where it was chained
			}
			if err := VerifyCheckpoint(&signed, c.keys); err != nil {
				c.add(s, BadSignature, "%v", err)
			}
		}
		for _, u := range r.e.Checkpoint.Unrecorded {
			unrecorded[u] = true
		}
	}
	last := uint64(0)
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
	}
	witnessSeq := uint64(0)
	for _, w := range witnesses {
		witnessSeq = max(witnessSeq, w.Seq)
		if r, ok := c.get(w.Seq); ok && r.hash != Of(w) {
			c.add(w.Seq, Modified, "stored checkpoint differs from the one published to the stream")
		}
	}
	gap := func(from, to uint64, kind FindingKind, why string) {
		for s := from; s <= to; s++ {
			switch {
			case origins[s]:
			case unrecorded[s]:
				c.add(s, Unrecorded, "the enforcer reported this event unrecorded")
			default:
				c.add(s, kind, "%s", why)
			}
		}
	}
	expect := uint64(1)
	for _, s := range seqs {
		if s > expect {
			gap(expect, s-1, Deleted, "missing, and later events of the chain exist")
		}
		expect = s + 1
	}
	if witnessSeq > last {
		gap(last+1, witnessSeq, Truncated, fmt.Sprintf("missing after the last stored event; a witness checkpoint reached seq %d", witnessSeq))
	}
	slices.SortStableFunc(c.findings, func(a, b Finding) int { return cmp.Compare(a.Seq, b.Seq) })
	return checkpoints
}

func short(s string) string {
	if len(s) > len(Prefix)+12 {
		return s[:len(Prefix)+12] + "…"
	}
	return s
}
