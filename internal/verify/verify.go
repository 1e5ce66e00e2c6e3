// Package verify checks the stored record for tampering: it reads whole
// event chains back from ClickHouse, optionally the checkpoints JetStream
// still holds (witnesses the database's attacker could not edit), and runs
// chain.Check over them, one segment between checkpoints at a time, so
// memory is bounded by the largest segment; a record that is not clean is
// then checked at once, to name what happened across segments and chains.
// `rampart verify` prints its report.
package verify

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/forensic"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Options select what to verify.
type Options struct {
	// Tenant, Instance and the time range [From, To) select chains: every
	// chain (instance epoch) with an event matching them is verified whole.
	Tenant, Instance string
	From, To         time.Time
	// Keys verify checkpoint signatures; nil skips signature checks.
	Keys map[string]ed25519.PublicKey
	// NATSURL, when set, reads witness checkpoints from the events stream.
	NATSURL string
	// Consumer is the collector's durable consumer: only witnesses it has
	// acknowledged — so ClickHouse accepted them — can prove a truncation.
	// Default "collector".
	Consumer string
}

// Result is the report and what it cost.
type Result struct {
	chain.Report
	Witnesses int
	// InFlight counts stream messages the collector had not yet stored
	// (pending or awaiting its ack) when verify began: while it is not
	// zero, the newest events may still be on their way, and a gap among
	// them is not yet proof of deletion. Known only with NATSURL.
	InFlight uint64
	// Alerts and Evidence count the selected alerts whose evidence was
	// checked, and the evidence ids they cite.
	Alerts, Evidence int
	// Held is the most chain links verify held in memory at once: the
	// largest segment between two checkpoints when the record is clean
	// (and ClickHouse's HTTP interface is configured), every selected
	// link when it is not.
	Held    int
	Read    time.Duration // reading events from ClickHouse
	Checked time.Duration // chain.Check
}

// Run verifies the chains selected by o in the database of ch.
func Run(ctx context.Context, ch *chstore.Client, o Options) (*Result, error) {
	res := &Result{}
	// What the collector had stored is read before ClickHouse is: a
	// witness or a gap judged against a later state could name events
	// that were stored after verify read the table.
	var col *collectorState
	if o.NATSURL != "" {
		consumer := o.Consumer
		if consumer == "" {
			consumer = "collector"
		}
		var err error
		if col, err = sampleCollector(ctx, o.NATSURL, consumer); err != nil {
			return nil, err
		}
		defer col.nc.Close()
		res.InFlight = col.inFlight
	}
	chains, err := selectChains(ctx, ch, o)
	if err != nil {
		return nil, err
	}
	var witnesses []*event.Event
	if col != nil {
		if witnesses, err = col.witnesses(ctx, chains); err != nil {
			return nil, err
		}
		res.Witnesses = len(witnesses)
	}
	clean := false
	if ch.HTTPAddr() != "" {
		// A segment at a time first; only a record that is not clean is
		// read whole, for findings named across segments and chains.
		start := time.Now()
		s, ok, err := checkSegmented(ctx, ch, chains, witnesses, chain.Options{Keys: o.Keys})
		if err != nil {
			return nil, err
		}
		res.Held, clean = s.held, ok
		if clean {
			res.Report, res.Checked = s.rep, s.checked
			res.Read = time.Since(start) - s.checked
		}
	}
	if !clean {
		if err := checkWhole(ctx, ch, o, chains, witnesses, res); err != nil {
			return nil, err
		}
	}
	if err := checkEvidence(ctx, ch, o, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkWhole checks the selected chains holding all their links at once.
func checkWhole(ctx context.Context, ch *chstore.Client, o Options, chains []chainRef, witnesses []*event.Event, res *Result) error {
	start := time.Now()
	links, err := readLinks(ctx, ch, chains)
	if err != nil {
		return err
	}
	res.Read = time.Since(start)
	res.Held = max(res.Held, len(links))
	start = time.Now()
	res.Report, err = chain.CheckLinks(links, chain.Options{Keys: o.Keys, Witnesses: witnesses,
		Load: func(instance, epoch string, seqs []uint64) ([]*event.Event, error) {
			return loadEvents(ctx, ch, instance, epoch, seqs)
		}})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	res.Checked = time.Since(start)
	return nil
}

// checkEvidence adds a finding for each evidence id of the selected
// alerts that does not resolve to a stored event of the alert's tenant.
func checkEvidence(ctx context.Context, ch *chstore.Client, o Options, res *Result) error {
	where := strings.Join(selection(o), " AND ")
	rows, err := ch.Query(ctx, fmt.Sprintf("SELECT count(), sum(length(alert_evidence)) FROM %s.events_raw WHERE kind = 'alert' AND %s", ch.Database(), where))
	if err != nil {
		return fmt.Errorf("verify: count alerts: %w", err)
	}
	res.Alerts, _ = strconv.Atoi(rows[0][0])
	res.Evidence, _ = strconv.Atoi(rows[0][1])
	if res.Alerts == 0 {
		return nil
	}
	rows, err = ch.Query(ctx, forensic.UnresolvedEvidence(ch.Database(), where))
	if err != nil {
		return fmt.Errorf("verify: alert evidence: %w", err)
	}
	for _, r := range rows {
		seq, _ := strconv.ParseUint(r[2], 10, 64)
		f := chain.Finding{Instance: r[0], Epoch: r[1], Seq: seq, Kind: chain.EvidenceMissing,
			Detail: fmt.Sprintf("alert %s (rule %s, tenant %q) cites %s, which no stored event is", r[3], r[5], r[4], r[6])}
		if r[7] != "" {
			f.Kind = chain.EvidenceOtherTenant
			f.Detail = fmt.Sprintf("alert %s (rule %s, tenant %q) cites %s, an event of tenant %q", r[3], r[5], r[4], r[6], r[7])
		}
		res.Findings = append(res.Findings, f)
	}
	return nil
}

func chainWhere(instance, epoch string) string {
	return "instance = " + forensic.Quote(instance) + " AND epoch = " + forensic.Quote(epoch)
}

// readLinks reads every stored row of the chains, in order of chain and
// seq. Over the HTTP interface the rows are hashed as they stream in;
// otherwise they are read whole.
func readLinks(ctx context.Context, ch *chstore.Client, chains []chainRef) ([]chain.Link, error) {
	n := 0
	for _, c := range chains {
		n += c.rows
	}
	links := make([]chain.Link, 0, n)
	var extra []chain.Link
	for _, c := range chains {
		// Rows arrive in no particular order, but a chain's seqs run densely
		// from 1: each goes straight to its place, saving Check a sort of
		// large structs. Only tampering leaves holes or extra rows.
		base := len(links)
		links = links[:base+c.rows]
		where := chainWhere(c.instance, c.epoch)
		var err error
		if ch.HTTPAddr() != "" {
			err = ch.ScanLinks(ctx, where, func(l chain.Link) error {
				extra = place(links[base:], l, extra)
				return nil
			})
		} else {
			err = ch.ReadEvents(ctx, where, func(e *event.Event) error {
				extra = place(links[base:], chain.LinkOf(e), extra)
				return nil
			})
		}
		if err != nil {
			return nil, err
		}
		kept := slices.DeleteFunc(links[base:], func(l chain.Link) bool { return l.Hash == (chain.Hash{}) })
		links = links[:base+len(kept)]
	}
	return append(links, extra...), nil
}

// place puts l in its slot of a chain's slots, by seq, or appends it to
// extra when it has none or the slot is taken.
func place(slots []chain.Link, l chain.Link, extra []chain.Link) []chain.Link {
	if l.Seq >= 1 && l.Seq <= uint64(len(slots)) && slots[l.Seq-1].Hash == (chain.Hash{}) {
		slots[l.Seq-1] = l
		return extra
	}
	return append(extra, l)
}

// loadEvents reads the stored rows of a chain at seqs whole: checkpoints,
// and events Check suspects were moved.
func loadEvents(ctx context.Context, ch EventReader, instance, epoch string, seqs []uint64) ([]*event.Event, error) {
	var b strings.Builder
	for i, s := range seqs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(s, 10))
	}
	where := chainWhere(instance, epoch) + " AND seq IN (" + b.String() + ")"
	read := ch.ReadEvents
	if c, ok := ch.(*chstore.Client); ok && c.HTTPAddr() != "" {
		read = c.ScanEvents
	}
	var out []*event.Event
	err := read(ctx, where, func(e *event.Event) error { out = append(out, e); return nil })
	return out, err
}

// selection is o's selection of events as SQL conditions over events_raw.
func selection(o Options) []string {
	conds := []string{"epoch != ''"}
	if o.Tenant != "" {
		conds = append(conds, "tenant = "+forensic.Quote(o.Tenant))
	}
	if o.Instance != "" {
		conds = append(conds, "instance = "+forensic.Quote(o.Instance))
	}
	if !o.From.IsZero() {
		conds = append(conds, fmt.Sprintf("event_time_us >= %d", o.From.UnixMicro()))
	}
	if !o.To.IsZero() {
		conds = append(conds, fmt.Sprintf("event_time_us < %d", o.To.UnixMicro()))
	}
	return conds
}

func selectChains(ctx context.Context, ch *chstore.Client, o Options) ([]chainRef, error) {
	conds := selection(o)
	// Each selected chain whole, with its size, so reading allocates once;
	// one pass over the table.
	rows, err := ch.Query(ctx, fmt.Sprintf(
		"SELECT instance, epoch, count(), max(seq) FROM %s.events_raw WHERE epoch != '' GROUP BY instance, epoch HAVING countIf(%s) > 0 ORDER BY instance, epoch",
		ch.Database(), strings.Join(conds, " AND ")))
	if err != nil {
		return nil, fmt.Errorf("verify: select chains: %w", err)
	}
	out := make([]chainRef, len(rows))
	for i, r := range rows {
		n, _ := strconv.Atoi(r[2])
		last, _ := strconv.ParseUint(r[3], 10, 64)
		out[i] = chainRef{r[0], r[1], n, last}
	}
	return out, nil
}

// chainRef names a stored chain (instance epoch) and its row count.
type chainRef struct {
	instance, epoch string
	rows            int
	last            uint64 // the highest seq stored
}

// collectorState is the collector's progress through the events stream
// when verify began.
type collectorState struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stored   uint64 // the stream sequence below which every message is stored
	inFlight uint64 // messages not yet stored
}

func sampleCollector(ctx context.Context, url, consumer string) (*collectorState, error) {
	nc, err := nats.Connect(url, nats.Name("rampart-verify"))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	col, err := js.Consumer(ctx, stream.Events, consumer)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("verify: collector consumer %q: %w", consumer, err)
	}
	info, err := col.Info(ctx)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("verify: %w", err)
	}
	return &collectorState{nc: nc, js: js, stored: info.AckFloor.Stream, inFlight: info.NumPending + uint64(info.NumAckPending)}, nil
}

// witnesses reads the checkpoints of the given chains still in the stream
// that the collector had already stored: a checkpoint still on its way to
// ClickHouse proves nothing missing there yet.
func (c *collectorState) witnesses(ctx context.Context, chains []chainRef) ([]*event.Event, error) {
	want := map[[2]string]bool{}
	for _, ch := range chains {
		want[[2]string{ch.instance, ch.epoch}] = true
	}
	js, stored := c.js, c.stored
	subj, _ := subject.For("", string(event.KindCheckpoint))
	s, err := js.Stream(ctx, stream.Events)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	total := info.State.Subjects[subj]
	if total == 0 {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream.Events, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var out []*event.Event
	for read := uint64(0); read < total; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("verify: read checkpoints: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil || md.Sequence.Stream > stored {
				continue
			}
			if e, err := event.Decode(m.Data()); err == nil && want[[2]string{e.Instance, e.Epoch}] {
				out = append(out, e)
			}
		}
		if n == 0 {
			break // the rest aged out meanwhile
		}
		read += uint64(n)
	}
	return out, nil
}

// Range is a run of one chain, seqs From to To, as `rampart investigate`
// shows them. First and Last, when set, are the times of its first and
// last event: they let the read use the table's time order.
type Range struct {
	Instance, Epoch string
	From, To        uint64
	First, Last     time.Time
}

// rangeSlack widens a range's time window: an enforcer stamps events
// before it chains them, so chain order and time order can differ a little.
const rangeSlack = time.Minute

// EventReader reads every stored copy of the events_raw rows where a
// condition holds: a chstore.Client, or chDB (chdbtest.Events), so the
// ranges a report spans are checked on either engine.
type EventReader interface {
	ReadEvents(ctx context.Context, where string, visit func(*event.Event) error) error
}

// CheckRanges verifies the stored events of each range, the link into it
// from the event before and the link out of it to the event after: that
// none is missing, altered, duplicated with other content or moved, and
// that each links to its predecessor. An event's own content is vouched
// for only by its successor's prev_hash (or a checkpoint), so without the
// event after it a range's last event could be rewritten unseen; a range
// at the end of its chain has no such event yet. It reads only the ranges
// and their neighbours, so a finding about an event beyond those (a gap
// between two ranges of one chain) is not reported: an event deleted
// beyond a range's ends leaves no trace in it, and a rewrite of a range's
// last event together with its successor's prev_hash shows only at the
// event after that, which is not read.
func CheckRanges(ctx context.Context, ch EventReader, ranges []Range, keys map[string]ed25519.PublicKey) (chain.Report, error) {
	var links []chain.Link
	// Each chain is checked from its first range on: the seqs before it
	// were not read, and reporting each as deleted, only to drop it, cost
	// time in proportion to how far into its chain a range lies.
	from := map[chain.ChainID]uint64{}
	for _, r := range ranges {
		id := chain.ChainID{Instance: r.Instance, Epoch: r.Epoch}
		if f, ok := from[id]; !ok || r.From < f {
			from[id] = r.From
		}
		got, err := readRange(ctx, ch, r, true)
		if err != nil {
			return chain.Report{}, err
		}
		if !complete(got, r) {
			// An event outside the window, or missing: only the whole
			// range can tell which.
			if got, err = readRange(ctx, ch, r, false); err != nil {
				return chain.Report{}, err
			}
		} else if !slices.ContainsFunc(got, func(l chain.Link) bool { return l.Seq == r.To+1 }) {
			// The successor may lie past the window (a later session's),
			// or not exist yet.
			if got, err = readSuccessor(ctx, ch, r, got); err != nil {
				return chain.Report{}, err
			}
		}
		links = append(links, got...)
	}
	rep, err := chain.CheckLinks(links, chain.Options{Keys: keys, From: from,
		Load: func(instance, epoch string, seqs []uint64) ([]*event.Event, error) {
			return loadEvents(ctx, ch, instance, epoch, seqs)
		}})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	// Findings on the neighbours read are kept: a forged copy of the
	// successor, or its bad signature, is what a rewrite of the range's
	// last event leaves there.
	kept := rep.Findings[:0]
	for _, f := range rep.Findings {
		for _, r := range ranges {
			if f.Instance == r.Instance && f.Epoch == r.Epoch && f.Seq+1 >= r.From && f.Seq <= r.To+1 {
				kept = append(kept, f)
				break
			}
		}
	}
	rep.Findings = kept
	return rep, nil
}

// readRange reads the links of r and of the event before it, within its
// time window when windowed and the range has one.
func readRange(ctx context.Context, ch EventReader, r Range, windowed bool) ([]chain.Link, error) {
	lo := max(r.From, 2) - 1
	where := chainWhere(r.Instance, r.Epoch) + fmt.Sprintf(" AND seq >= %d AND seq <= %d", lo, r.To+1)
	if windowed && !r.First.IsZero() && !r.Last.IsZero() {
		from, to := r.First.Add(-rangeSlack).Unix(), r.Last.Add(rangeSlack).Unix()
		where += fmt.Sprintf(" AND event_time >= toDateTime(%d) AND event_time <= toDateTime(%d)", from, to)
	}
	var out []chain.Link
	err := ch.ReadEvents(ctx, where, func(e *event.Event) error {
		out = append(out, chain.LinkOf(e))
		return nil
	})
	return out, err
}

// readSuccessor appends to links the stored copies of the event after r.
func readSuccessor(ctx context.Context, ch EventReader, r Range, links []chain.Link) ([]chain.Link, error) {
	where := chainWhere(r.Instance, r.Epoch) + fmt.Sprintf(" AND seq = %d", r.To+1)
	err := ch.ReadEvents(ctx, where, func(e *event.Event) error {
		links = append(links, chain.LinkOf(e))
		return nil
	})
	return links, err
}

// complete reports whether links hold every seq of r and its
// predecessor (its successor may not exist yet).
func complete(links []chain.Link, r Range) bool {
	lo := max(r.From, 2) - 1
	seen := make(map[uint64]bool, r.To-lo+1)
	for _, l := range links {
		if l.Seq <= r.To {
			seen[l.Seq] = true
		}
	}
	return uint64(len(seen)) == r.To-lo+1
}
