// Package verify checks the stored record for tampering: it reads whole
// event chains back from ClickHouse, optionally the checkpoints JetStream
// still holds (witnesses the database's attacker could not edit), and runs
// chain.Check over them. `rampart verify` prints its report.
package verify

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
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
	Read      time.Duration // reading events from ClickHouse
	Checked   time.Duration // chain.Check
}

// Run verifies the chains selected by o in the database of ch.
func Run(ctx context.Context, ch *chstore.Client, o Options) (*Result, error) {
	chains, err := selectChains(ctx, ch, o)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	var events []*event.Event
	start := time.Now()
	read := ch.ReadEvents
	if ch.HTTPAddr() != "" {
		read = ch.ScanEvents // the fast path, when the HTTP interface is known
	}
	for _, c := range chains {
		where := "instance = " + forensic.Quote(c[0]) + " AND epoch = " + forensic.Quote(c[1])
		if err := read(ctx, where, func(e *event.Event) error { events = append(events, e); return nil }); err != nil {
			return nil, err
		}
	}
	res.Read = time.Since(start)
	var witnesses []*event.Event
	if o.NATSURL != "" {
		consumer := o.Consumer
		if consumer == "" {
			consumer = "collector"
		}
		if witnesses, err = readWitnesses(ctx, o.NATSURL, consumer, chains); err != nil {
			return nil, err
		}
		res.Witnesses = len(witnesses)
	}
	start = time.Now()
	res.Report = chain.Check(events, chain.Options{Keys: o.Keys, Witnesses: witnesses})
	res.Checked = time.Since(start)
	return res, nil
}

func selectChains(ctx context.Context, ch *chstore.Client, o Options) ([][2]string, error) {
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
	rows, err := ch.Query(ctx, fmt.Sprintf("SELECT DISTINCT instance, epoch FROM %s.events_raw WHERE %s ORDER BY instance, epoch",
		ch.Database(), strings.Join(conds, " AND ")))
	if err != nil {
		return nil, fmt.Errorf("verify: select chains: %w", err)
	}
	out := make([][2]string, len(rows))
	for i, r := range rows {
		out[i] = [2]string{r[0], r[1]}
	}
	return out, nil
}

// readWitnesses reads the checkpoints of the given chains still in the
// stream that the collector has already stored: a checkpoint still on its
// way to ClickHouse proves nothing missing there yet.
func readWitnesses(ctx context.Context, url, consumer string, chains [][2]string) ([]*event.Event, error) {
	want := map[[2]string]bool{}
	for _, c := range chains {
		want[c] = true
	}
	nc, err := nats.Connect(url, nats.Name("rampart-verify"))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	subj, _ := subject.For("", string(event.KindCheckpoint))
	col, err := js.Consumer(ctx, stream.Events, consumer)
	if err != nil {
		return nil, fmt.Errorf("verify: collector consumer %q: %w", consumer, err)
	}
	cinfo, err := col.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	stored := cinfo.AckFloor.Stream
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

// LoadKeys reads PEM public keys (PKIX, Ed25519) from files, by key id.
func LoadKeys(paths []string, keyID func(ed25519.PublicKey) string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("verify: %s: %w", p, err)
			}
			pub, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("verify: %s: not an Ed25519 key", p)
			}
			keys[keyID(pub)] = pub
		}
	}
	if len(keys) == 0 && len(paths) > 0 {
		return nil, errors.New("verify: no public keys found")
	}
	return keys, nil
}
