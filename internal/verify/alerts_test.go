package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
	"github.com/rampart-io/rampart/schema/subject"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// publishChain links events as one instance's chain, ends it with a
// signed checkpoint, and publishes each on its subject: what a correlator
// instance does with its alerts (and an enforcer with its events).
func publishChain(t *testing.T, js jetstream.JetStream, instance string, signer chain.Signer, events ...*event.Event) {
	t.Helper()
	ctx := context.Background()
	l := chain.NewLinker(instance, "01EPOCH"+strings.ToUpper(instance))
	cp := &event.Event{V: event.Version, Time: time.Now()}
	for _, e := range events {
		l.Link(e)
	}
	cp.ID = (&event.IDSource{}).New(cp.Time)
	l.Checkpoint(cp, signer, nil)
	for _, e := range append(events, cp) {
		data, err := event.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		subj, err := subject.For(e.Tenant, string(e.Kind))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subj, data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyCoversAlerts: a correlator instance's chain of alerts is
// verified like an enforcer's — its checkpoints signed, witnessed from
// JetStream, and an edited alert found — and every alert's evidence must
// resolve to stored events of its own tenant: evidence a correlator cited
// but that is not stored, or is another tenant's, is a finding, whether
// the alert was published so or edited into it.
func TestVerifyCoversAlerts(t *testing.T) {
	srv := natstest.Run(t)
	addr, _ := chtest.Server(t)
	ch := chtest.Open(t, addr)
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := chain.Signer{KeyID: chain.KeyID(pub), Key: priv}
	trusted := map[string]ed25519.PublicKey{signer.KeyID: pub}

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := stream.Ensure(ctx, js, stream.Defaults()); err != nil {
		t.Fatal(err)
	}
	ids := &event.IDSource{}
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	decision := func(tenant string) *event.Event {
		at = at.Add(time.Millisecond)
		return &event.Event{V: event.Version, ID: ids.New(at), Kind: event.KindDecision, Time: at, Tenant: tenant,
			Decision: &event.Decision{Effect: event.EffectDeny, PolicyID: "p", RuleID: "deny-shell"}}
	}
	alert := func(tenant string, evidence ...*event.Event) *event.Event {
		at = at.Add(time.Millisecond)
		a := &event.Event{V: event.Version, ID: ids.New(at), Kind: event.KindAlert, Time: at, Tenant: tenant,
			Alert: &event.Alert{RuleID: "probing", Title: "Probing", Severity: event.SeverityHigh, Count: len(evidence)}}
		for _, e := range evidence {
			a.Alert.Evidence = append(a.Alert.Evidence, e.ID)
		}
		a.Alert.First, a.Alert.Last = evidence[0].Time, evidence[len(evidence)-1].Time
		return a
	}
	e1, e2, e3 := decision("acme"), decision("acme"), decision("globex")
	publishChain(t, js, "enf-x", signer, e1, e2, e3)
	// pad keeps the edited alerts apart: the checker names each of two
	// adjacent edits only as far as the chain can tell them apart.
	a1, a2, pad, a3 := alert("acme", e1, e2), alert("acme", e1), alert("acme", e1), alert("globex", e3)
	publishChain(t, js, "corr-1", signer, a1, a2, pad, a3)
	// A correlator citing what is not stored, and another tenant's event:
	// its chain is intact, its evidence is not.
	ghost := &event.Event{ID: "01NOTSTORED0000000000000000", Time: at}
	a4, a5 := alert("acme", ghost), alert("acme", e3)
	publishChain(t, js, "corr-2", signer, a4, a5)
	// record stores everything in the stream, with one enforcer's events.
	record(t, srv.URL(), addr, ch, keyFileOf(t, priv), 20, "enf-a")

	opts := verify.Options{Keys: trusted, NATSURL: srv.URL()}
	res, err := verify.Run(ctx, ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Chains != 4 || res.Alerts != 6 || res.Evidence != 7 || res.Witnesses != res.Checkpoints || res.Checkpoints < 4 {
		t.Fatalf("report: %+v", res)
	}
	type found struct {
		kind     chain.FindingKind
		instance string
		seq      uint64
	}
	findings := func(res *verify.Result) []found {
		var out []found
		for _, f := range res.Findings {
			out = append(out, found{f.Kind, f.Instance, f.Seq})
		}
		sort.Slice(out, func(i, j int) bool {
			a, b := out[i], out[j]
			return a.instance < b.instance || a.instance == b.instance && (a.seq < b.seq || a.seq == b.seq && a.kind < b.kind)
		})
		return out
	}
	want := []found{{chain.EvidenceMissing, "corr-2", 1}, {chain.EvidenceOtherTenant, "corr-2", 2}}
	if got := findings(res); !reflect.DeepEqual(got, want) || res.Clean() {
		t.Fatalf("findings %v, want %v:\n%v", got, want, res.Findings)
	}
	for _, f := range res.Findings {
		if !strings.Contains(f.Detail, "probing") || f.Kind == chain.EvidenceOtherTenant && !strings.Contains(f.Detail, `"globex"`) {
			t.Errorf("finding does not say enough: %v", f)
		}
	}

	db := ch.Database() + ".events_raw"
	mutate(t, ch, "ALTER TABLE "+db+" UPDATE alert_severity = 'low' WHERE event_id = '"+a3.ID+"'")
	mutate(t, ch, "ALTER TABLE "+db+" DELETE WHERE event_id = '"+e2.ID+"'")
	mutate(t, ch, "ALTER TABLE "+db+" UPDATE alert_evidence = ['"+e3.ID+"'] WHERE event_id = '"+a2.ID+"'")
	res, err = verify.Run(ctx, ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	want = []found{
		{chain.EvidenceMissing, "corr-1", 1},     // a1 cites the deleted e2
		{chain.EvidenceOtherTenant, "corr-1", 2}, // a2 made to cite globex's e3 ...
		{chain.Modified, "corr-1", 2},            // ... which the chain sees too
		{chain.Modified, "corr-1", 4},            // a3's severity
		{chain.EvidenceMissing, "corr-2", 1},
		{chain.EvidenceOtherTenant, "corr-2", 2},
		{chain.Deleted, "enf-x", 2}, // e2
	}
	if got := findings(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings after tampering\n got %v\nwant %v\n%v", got, want, res.Findings)
	}
	// The selection applies: one tenant's alerts only.
	opts.Tenant = "globex"
	if res, err = verify.Run(ctx, ch, opts); err != nil || res.Alerts != 1 {
		t.Fatalf("globex: %+v %v", res, err)
	}
}

// keyFileOf writes priv as the PEM file enforcers read their checkpoint key from.
func keyFileOf(t *testing.T, priv ed25519.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
