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

	// Found by `rampart verify` over the stored alerts, not by Check: an
	// alert whose evidence names no stored event, or only events of
	// another tenant. The alert's own chain may be intact (a correlator
	// that cited what it never saw) or not (an edited alert); either way
	// the finding names the alert's place in its chain.
	EvidenceMissing     FindingKind = "evidence_missing"
	EvidenceOtherTenant FindingKind = "evidence_other_tenant"
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
	// Load reads the whole stored events of a chain at seqs, for links
	// checked without them (CheckLinks). Nil: such links are checked
	// without telling a moved event from an edited one.
	Load func(instance, epoch string, seqs []uint64) ([]*event.Event, error)
	// From holds, for each chain whose links given begin past its start,
	// where they begin, after the link before it (checked, not reported): a
	// chain checked a segment at a time, or the ranges an investigation
	// spans. Sequence numbers below it are not reported missing; a chain
	// without an entry is checked from seq 1.
	From map[ChainID]uint64
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

// ChainID names one chain: an enforcer instance's epoch.
type ChainID struct{ Instance, Epoch string }

// Link is what Check needs of one stored event: where it sits, what it
// follows, and its hash. Event, the whole event, is needed only for
// checkpoints and to test whether an event was moved; Check asks
// Options.Load for it when it is not there.
type Link struct {
	Instance, Epoch string
	Seq             uint64
	ID              string
	Kind            event.Kind
	Prev            Hash // the stored prev_hash, parsed; zero when malformed
	HasPrev         bool // prev_hash is not empty
	Hash            Hash
	Event           *event.Event
}

// LinkOf is e's Link.
func LinkOf(e *event.Event) Link {
	return Link{Instance: e.Instance, Epoch: e.Epoch, Seq: e.Seq, ID: e.ID, Kind: e.Kind,
		Prev: parse(e.Prev), HasPrev: e.Prev != "", Hash: Of(e), Event: e}
}

func (l *Link) prevString() string {
	if !l.HasPrev {
		return ""
	}
	return l.Prev.String()
}

type row = Link

// Check examines stored events (any order, redelivered copies allowed) and
// reports every sequence number that is not as its enforcer chained it.
// Events must include whole epochs: a chain read from the middle shows its
// unread beginning as deleted.
func Check(events []*event.Event, o Options) Report {
	links := make([]Link, len(events))
	// Hashing is most of the work, and independent per event: spread it.
	workers := min(runtime.GOMAXPROCS(0), 1+len(events)/4096)
	var wg sync.WaitGroup
	chunk := (len(events) + workers - 1) / max(workers, 1)
	for lo := 0; lo < len(events); lo += chunk {
		hi := min(lo+chunk, len(events))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				links[i] = LinkOf(events[i])
			}
		})
	}
	wg.Wait()
	rep, _ := CheckLinks(links, o) // every link has its event: nothing to load
	return rep
}

// CheckLinks is Check over links, which it sorts in place. It fails only
// when Options.Load does.
func CheckLinks(rows []Link, o Options) (Report, error) {
	var rep Report
	// Rows read in order need no sorting, and sorting moves whole links.
	byChainSeqHash := func(a, b row) int {
		if c := cmp.Compare(a.Instance, b.Instance); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	}
	if !slices.IsSortedFunc(rows, byChainSeqHash) {
		slices.SortFunc(rows, byChainSeqHash)
	}
	// Redelivered copies are identical: keep one.
	rows = slices.CompactFunc(rows, func(a, b row) bool {
		return a.Hash == b.Hash && a.Seq == b.Seq && a.Instance == b.Instance && a.Epoch == b.Epoch
	})
	rep.Events = len(rows)

	witnessed := map[ChainID][]*event.Event{}
	for _, w := range o.Witnesses {
		k := ChainID{w.Instance, w.Epoch}
		if w.Kind != event.KindCheckpoint || o.Keys != nil && VerifyCheckpoint(w, o.Keys) != nil {
			continue // an unverifiable witness proves nothing
		}
		witnessed[k] = append(witnessed[k], w)
	}
	x := &crossChain{rows: rows}
	for start := 0; start < len(rows); {
		k := ChainID{rows[start].Instance, rows[start].Epoch}
		end := start + 1
		for end < len(rows) && rows[end].Instance == k.Instance && rows[end].Epoch == k.Epoch {
			end++
		}
		c := checker{key: k, rows: rows[start:end], cross: x, keys: o.Keys, load: o.Load, from: o.From[k]}
		n, err := c.run(witnessed[k])
		if err != nil {
			return rep, err
		}
		rep.Checkpoints += n
		rep.Findings = append(rep.Findings, c.findings...)
		delete(witnessed, k)
		rep.Chains++
		start = end
	}
	for k, ws := range witnessed { // witnessed chains with nothing stored
		c := checker{key: k, cross: x, keys: o.Keys}
		if _, err := c.run(ws); err != nil {
			return rep, err
		}
		rep.Findings = append(rep.Findings, c.findings...)
		rep.Chains++
	}
	return rep, nil
}

// crossChain answers whether a row belongs to another chain; it indexes
// every row only when first asked, which clean data never does.
type crossChain struct {
	rows    []row
	once    bool
	ids     map[string]ChainID // event id -> a chain holding it; zero key when several
	hashIdx map[Hash]ChainID
}

func (x *crossChain) foreign(k ChainID, r row) bool {
	if !x.once {
		x.once = true
		x.ids = make(map[string]ChainID, len(x.rows))
		x.hashIdx = make(map[Hash]ChainID, len(x.rows))
		for _, r := range x.rows {
			rk := ChainID{r.Instance, r.Epoch}
			if have, ok := x.ids[r.ID]; ok && have != rk {
				x.ids[r.ID] = ChainID{}
			} else if !ok {
				x.ids[r.ID] = rk
			}
			x.hashIdx[r.Hash] = rk
		}
	}
	if owner := x.ids[r.ID]; owner != k {
		return true // the same event id is stored in another chain
	}
	owner, ok := x.hashIdx[r.Prev]
	return ok && r.HasPrev && owner != k
}

// parse is e.Prev as a hash; zero, matching nothing, when malformed.
func parse(s string) Hash {
	h, _ := ParseHash([]byte(s))
	return h
}

// checker examines one chain.
type checker struct {
	key      ChainID
	rows     []row // sorted by seq
	cross    *crossChain
	keys     map[string]ed25519.PublicKey
	load     func(instance, epoch string, seqs []uint64) ([]*event.Event, error)
	from     uint64 // Options.From of this chain
	uniq     []row  // the version of each seq taken as stored, by seq
	findings []Finding
}

// index is where seq's version is, or would be, in c.uniq.
func (c *checker) index(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(c.uniq, seq, func(r row, s uint64) int { return cmp.Compare(r.Seq, s) })
}

// get returns the stored version of seq.
func (c *checker) get(seq uint64) (row, bool) {
	i, ok := c.index(seq)
	if !ok {
		return row{}, false
	}
	return c.uniq[i], true
}

// at is the stored version of seq, a zero row when there is none.
func (c *checker) at(seq uint64) row {
	r, _ := c.get(seq)
	return r
}

func (c *checker) foreign(r row) bool { return c.cross.foreign(c.key, r) }

func (c *checker) add(seq uint64, kind FindingKind, format string, args ...any) {
	c.findings = append(c.findings, Finding{c.key.Instance, c.key.Epoch, seq, kind, fmt.Sprintf(format, args...)})
}

// linksFrom reports whether r follows the stored event at seq-1.
func (c *checker) linksFrom(r row, seq uint64) bool {
	if seq == 1 {
		return !r.HasPrev
	}
	p, ok := c.get(seq - 1)
	return ok && r.HasPrev && r.Prev == p.Hash
}

// run checks the chain in named steps: one version per sequence number,
// the links between them, moves among the broken ones, the remaining
// breaks attributed, the checkpoints and witnesses, then the gaps.
func (c *checker) run(witnesses []*event.Event) (checkpoints int, err error) {
	seqs, bySeq := c.versions()
	c.chooseVersions(seqs, bySeq)
	brokenIn := c.brokenLinks()
	moved, err := c.findMoves(brokenIn)
	if err != nil {
		return 0, err
	}
	origins := map[uint64]bool{}
	for cur, orig := range moved {
		origins[orig] = true
		c.add(cur, Reordered, "event %s was chained at seq %d", c.at(cur).ID, orig)
	}
	c.attributeBreaks(brokenIn, moved, origins)
	checkpoints, unrecorded, err := c.checkCheckpoints(moved)
	if err != nil {
		return 0, err
	}
	witnessSeq := c.checkWitnesses(witnesses)
	c.gaps(seqs, witnessSeq, origins, unrecorded)
	slices.SortStableFunc(c.findings, func(a, b Finding) int { return cmp.Compare(a.Seq, b.Seq) })
	return checkpoints, nil
}

// versions sets c.uniq to the first stored version of each sequence
// number and returns the sequence numbers in order, and every version of
// those stored more than once.
func (c *checker) versions() (seqs []uint64, bySeq map[uint64][]row) {
	bySeq = map[uint64][]row{} // only sequence numbers with several versions
	seqs = make([]uint64, 0, len(c.rows))
	dups := false
	for i := 1; i < len(c.rows) && !dups; i++ {
		dups = c.rows[i].Seq == c.rows[i-1].Seq
	}
	if !dups { // the usual case: the rows are the versions, no copy needed
		c.uniq = c.rows
		for _, r := range c.rows {
			seqs = append(seqs, r.Seq)
		}
		return seqs, bySeq
	}
	for i, r := range c.rows {
		s := r.Seq
		if i > 0 && c.rows[i-1].Seq == s {
			bySeq[s] = append(bySeq[s], r)
			continue
		}
		seqs = append(seqs, s)
		c.uniq = append(c.uniq, r)
		if i+1 < len(c.rows) && c.rows[i+1].Seq == s {
			bySeq[s] = []row{r}
		}
	}
	return seqs, bySeq
}

// chooseVersions keeps one version per sequence number: where copies
// disagree, the one that links both ways, and names the others.
func (c *checker) chooseVersions(seqs []uint64, bySeq map[uint64][]row) {
	for _, s := range seqs {
		vs := bySeq[s]
		if len(vs) < 2 {
			continue
		}
		keep, best := 0, -1
		for i, v := range vs {
			score := 0
			if c.linksFrom(v, s) {
				score++
			}
			if next, ok := c.get(s + 1); ok && next.HasPrev && next.Prev == v.Hash {
				score++
			}
			if score > best {
				keep, best = i, score
			}
		}
		i, _ := c.index(s)
		c.uniq[i] = vs[keep]
		for i, v := range vs {
			if i == keep {
				continue
			}
			if c.foreign(v) {
				c.add(s, Spliced, "a second event %s at this sequence number, copied from another chain", v.ID)
			} else {
				c.add(s, Spliced, "a second event %s at this sequence number", v.ID)
			}
		}
	}
}

// brokenLinks returns the sequence numbers whose row does not follow its
// stored predecessor.
func (c *checker) brokenLinks() []uint64 {
	var brokenIn []uint64
	for i, r := range c.uniq {
		s := r.Seq
		switch {
		case s == 1:
			if r.HasPrev {
				brokenIn = append(brokenIn, s)
			}
		case i > 0 && c.uniq[i-1].Seq == s-1:
			if !r.HasPrev || r.Prev != c.uniq[i-1].Hash {
				brokenIn = append(brokenIn, s)
			}
		}
	}
	return brokenIn
}

// maxMoveSuspects bounds the breaks searched for moved rows: each costs
// loading events and hashing every pair of neighbours.
const maxMoveSuspects = 256

// findMoves finds rows moved to another sequence number: such a row still
// hashes, with its original number put back, to what its original
// successor expects. It returns current seq -> original seq.
func (c *checker) findMoves(brokenIn []uint64) (map[uint64]uint64, error) {
	moved := map[uint64]uint64{}
	if len(brokenIn) == 0 || len(brokenIn) > maxMoveSuspects {
		return moved, nil
	}
	var suspects []uint64
	for _, s := range brokenIn {
		for _, q := range []uint64{s - 1, s, s + 1} {
			if _, ok := c.get(q); ok && !slices.Contains(suspects, q) {
				suspects = append(suspects, q)
			}
		}
	}
	if err := c.loadEvents(suspects); err != nil {
		return nil, err
	}
	for _, s := range brokenIn {
		if !c.at(s).HasPrev {
			continue
		}
		want := c.at(s).Prev
		for _, cand := range suspects {
			e := c.at(cand).Event
			if e == nil {
				continue // not loaded: cannot tell a move from an edit
			}
			for _, orig := range suspects {
				if orig == cand {
					continue
				}
				r := *e
				r.Seq = orig
				if Of(&r) == want {
					moved[cand] = orig
				}
			}
		}
	}
	return moved, nil
}

// attributeBreaks names what each break that no move explains is: a row
// spliced in from another chain, an edited predecessor, or a row that
// does not follow.
func (c *checker) attributeBreaks(brokenIn []uint64, moved map[uint64]uint64, origins map[uint64]bool) {
	for _, s := range brokenIn {
		if _, isMoved := moved[s]; isMoved {
			continue
		}
		prev, hasPrev := c.get(s - 1)
		switch {
		case c.foreign(c.at(s)):
			r := c.at(s)
			c.add(s, Spliced, "event %s was chained elsewhere (prev %s)", r.ID, short(r.prevString()))
		case hasPrev && moved[s-1] == 0 && (c.linksFrom(prev, s-1) || s-1 == 0) && !c.foreign(prev) && !origins[s-1]:
			// The predecessor is where it was chained but hashes differently:
			// it was edited after the fact.
			c.add(s-1, Modified, "event %s no longer hashes to what seq %d chained", prev.ID, s)
		case origins[s-1]:
			// Explained by a move into or out of seq s-1.
		case hasPrev && c.foreign(prev):
			// Explained by the splice just before.
		default:
			c.add(s, Modified, "event %s does not follow seq %d", c.at(s).ID, s-1)
		}
	}
}

// checkCheckpoints reads every stored checkpoint whole, verifies its
// signature (where it was chained, for a moved one) and returns how many
// there are and the sequence numbers they report unrecorded.
func (c *checker) checkCheckpoints(moved map[uint64]uint64) (checkpoints int, unrecorded map[uint64]bool, err error) {
	var cps []uint64
	for _, r := range c.uniq {
		if r.Kind == event.KindCheckpoint && r.Event == nil {
			cps = append(cps, r.Seq)
		}
	}
	if err := c.loadEvents(cps); err != nil {
		return 0, nil, err
	}
	unrecorded = map[uint64]bool{}
	for _, r := range c.uniq {
		s := r.Seq
		if r.Kind != event.KindCheckpoint {
			continue
		}
		checkpoints++
		if r.Event == nil {
			c.add(s, Modified, "checkpoint %s could not be read whole", r.ID)
			continue
		}
		if c.keys != nil {
			signed := *r.Event
			if orig, ok := moved[s]; ok {
				signed.Seq = orig // it was signed where it was chained
			}
			if err := VerifyCheckpoint(&signed, c.keys); err != nil {
				c.add(s, BadSignature, "%v", err)
				continue // its word on unrecorded events is not the enforcer's
			}
		}
		if r.Event.Checkpoint == nil {
			continue
		}
		for _, u := range r.Event.Checkpoint.Unrecorded {
			unrecorded[u] = true
		}
	}
	return checkpoints, unrecorded, nil
}

// checkWitnesses compares the checkpoints published to the stream with
// the stored ones and returns the highest sequence number they reach.
func (c *checker) checkWitnesses(witnesses []*event.Event) uint64 {
	witnessSeq := uint64(0)
	for _, w := range witnesses {
		witnessSeq = max(witnessSeq, w.Seq)
		if r, ok := c.get(w.Seq); ok && r.Hash != Of(w) {
			c.add(w.Seq, Modified, "stored checkpoint differs from the one published to the stream")
		}
	}
	return witnessSeq
}

// gaps names each missing sequence number: deleted between stored events,
// truncated after the last one up to what a witness reached, or
// unrecorded by the enforcer's own account; numbers a move explains are
// not missing.
func (c *checker) gaps(seqs []uint64, witnessSeq uint64, origins, unrecorded map[uint64]bool) {
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
	if c.from > 1 {
		expect = c.from - 1 // the link before the first, given to check the link into it
	}
	for _, s := range seqs {
		if s > expect {
			gap(expect, s-1, Deleted, "missing, and later events of the chain exist")
		}
		expect = s + 1
	}
	last := uint64(0)
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
	}
	if witnessSeq > last {
		gap(last+1, witnessSeq, Truncated, fmt.Sprintf("missing after the last stored event; a witness checkpoint reached seq %d", witnessSeq))
	}
}

// loadEvents fills in the whole events of the stored versions at seqs that
// lack them, matching what Load returns to them by hash.
func (c *checker) loadEvents(seqs []uint64) error {
	var want []uint64
	for _, s := range seqs {
		if r, ok := c.get(s); ok && r.Event == nil {
			want = append(want, s)
		}
	}
	if len(want) == 0 || c.load == nil {
		return nil
	}
	events, err := c.load(c.key.Instance, c.key.Epoch, want)
	if err != nil {
		return err
	}
	for _, e := range events {
		if i, ok := c.index(e.Seq); ok && c.uniq[i].Hash == Of(e) {
			c.uniq[i].Event = e
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > len(Prefix)+12 {
		return s[:len(Prefix)+12] + "…"
	}
	return s
}
