package investigate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/internal/investigate"
	"github.com/rampart-io/rampart/internal/verify"
	"github.com/rampart-io/rampart/schema/chain"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chdbtest"
	"github.com/rampart-io/rampart/testkit/chromiumtest"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/poll"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// fixture is a small incident: in tenant acme, alice's planner delegates to
// a sub-agent that searches, is denied a secret, and mails out (the mail
// backend fails); bob's planner delegates to a mailer in a second session
// of the same task, on another enforcer. A tenant whose name needs quoting
// holds a session of the same id, which must never leak into acme's.
func fixture() (out []*event.Event) {
	linkers := map[string]*chain.Linker{"enf-1": chain.NewLinker("enf-1", "ep-1"), "enf-2": chain.NewLinker("enf-2", "ep-7")}
	call := 0
	add := func(at time.Duration, inst, tenant, session, principal string, agents []string, tool, dest, class string, effect event.Effect, rule string, status int) {
		call++
		chainActors := make([]event.Actor, len(agents))
		for i, a := range agents {
			chainActors[i] = event.Actor{Subject: a, Issuer: "https://idp.example"}
		}
		id := &event.Identity{Subject: principal, Issuer: "https://idp.example", Chain: chainActors, SessionID: session, TaskID: "task-1"}
		req := &event.Request{Method: "POST", Host: dest, Path: "/mcp", RPCMethod: "tools/call", Tool: tool, ArgsDigest: "sha256:00", Destination: dest, DataClass: class}
		kinds := []event.Kind{event.KindRequest, event.KindDecision}
		if effect == event.EffectAllow {
			kinds = append(kinds, event.KindResponse)
		}
		for i, k := range kinds {
			at := t0.Add(at + time.Duration(i)*time.Millisecond)
			// Deterministic ids, so the goldens can show them.
			e := &event.Event{V: event.Version, ID: fmt.Sprintf("01KEV%04d", len(out)+1), Kind: k, Time: at, Tenant: tenant,
				RequestID: fmt.Sprintf("req-%d", call), Identity: id, Request: req}
			switch k {
			case event.KindDecision:
				e.Decision = &event.Decision{Effect: effect, PolicyID: "default", RuleID: rule, PolicyHash: "sha256:ab12", Reason: "rule " + rule}
			case event.KindResponse:
				e.Response = &event.Response{Status: status, DurationNs: 12_500_000}
			}
			linkers[inst].Link(e)
			out = append(out, e)
		}
	}
	defer func() {
		// The correlator's alert: a secret denied, then mail sent, in s-1;
		// it carries the identity of the event that completed it.
		last := out[6]
		out = append(out, &event.Event{V: event.Version, ID: "01KALERT0001", Kind: event.KindAlert, Time: last.Time.Add(time.Second),
			Tenant: "acme", RequestID: last.RequestID, Identity: last.Identity,
			Alert: &event.Alert{RuleID: "secret-then-mail", Title: "Secret denied, then mail sent", Severity: event.SeverityHigh,
				Tags: []string{"T2", "L1"}, First: out[4].Time, Last: last.Time, Count: 2, Evidence: []string{out[4].ID, last.ID}}})
	}()
	sub := []string{"agent:planner", "agent:sub"}
	add(0, "enf-1", "acme", "s-1", "user:alice", sub, "search", "search.internal", "public", event.EffectAllow, "allow-search", 200)
	add(2*time.Second, "enf-1", "acme", "s-1", "user:alice", sub, "read_secret", "vault.internal", "secret", event.EffectDeny, "deny-secrets", 0)
	add(3*time.Second, "enf-1", "acme", "s-1", "user:alice", sub, "send_email", "mail.internal", "pii", event.EffectAllow, "allow-mail", 502)
	add(4*time.Second, "enf-2", "acme", "s-2", "user:bob", []string{"agent:planner", "agent:mailer"}, "send_email", "mail.internal", "pii", event.EffectAllow, "allow-mail", 200)
	add(5*time.Second, "enf-1", "o'brien\\co", "s-1", "user:eve", []string{"agent:sub"}, "shell", "runner.internal", "internal", event.EffectDeny, "deny-shell", 0)
	return
}

// credentialFixture is one task credential's life on enforcer enf-3: in
// tenant acme, carol's fetcher is issued jti-1 for the crm, two calls
// carry it, a third carries another credential, and the credential is
// revoked when the task ends. A decision of tenant globex naming the same
// jti (its issuer's, not acme's) must never show in acme's answer.
func credentialFixture() []*event.Event {
	l := chain.NewLinker("enf-3", "ep-3")
	id := &event.Identity{Subject: "user:carol", Issuer: "https://idp.example", Chain: []event.Actor{{Subject: "agent:fetcher", Issuer: "https://idp.example"}},
		SessionID: "s-3", TaskID: "task-2"}
	at := t0.Add(10 * time.Second)
	cred := func(eid string, d time.Duration, action event.CredentialAction, reason string) *event.Event {
		return &event.Event{V: event.Version, ID: eid, Kind: event.KindCredential, Time: at.Add(d), Tenant: "acme", RequestID: "req-c1", Identity: id,
			Credential: &event.Credential{Action: action, JTI: "jti-1", Audience: "https://crm.internal", Scope: []string{"crm.read", "crm.search"},
				KeyID: "kid-1", Expires: at.Add(5 * time.Minute), Reason: reason}}
	}
	decision := func(eid, tenant, req, jti, tool string, d time.Duration, effect event.Effect) *event.Event {
		return &event.Event{V: event.Version, ID: eid, Kind: event.KindDecision, Time: at.Add(d), Tenant: tenant, RequestID: req, Identity: id,
			Request:  &event.Request{Method: "POST", Host: "crm.internal", Path: "/mcp", RPCMethod: "tools/call", Tool: tool, Destination: "crm.internal"},
			Decision: &event.Decision{Effect: effect, PolicyID: "default", RuleID: "allow-crm", PolicyHash: "sha256:ab12", CredentialJTI: jti}}
	}
	evs := []*event.Event{
		cred("01KCR0001", 0, event.CredentialIssued, "destination crm.internal"),
		decision("01KCR0002", "acme", "req-c1", "jti-1", "crm_lookup", time.Millisecond, event.EffectAllow),
		decision("01KCR0003", "acme", "req-c2", "jti-1", "crm_search", time.Second, event.EffectAllow),
		decision("01KCR0004", "acme", "req-c3", "jti-2", "crm_lookup", 2*time.Second, event.EffectAllow),
		cred("01KCR0005", 3*time.Second, event.CredentialRevoked, "task ended"),
		decision("01KCR0006", "globex", "req-c4", "jti-1", "crm_lookup", 4*time.Second, event.EffectAllow),
	}
	for _, e := range evs {
		l.Link(e)
	}
	return evs
}

// jsonEachRow renders rows for chDB's text insert.
func jsonEachRow(rows [][]any) string {
	var b strings.Builder
	for _, r := range rows {
		m := make(map[string]any, len(r))
		for i, v := range r {
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format(time.DateTime)
			}
			m[ddl.EventColumns[i]] = v
		}
		line, _ := json.Marshal(m)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// engine is one engine holding the fixture: a Store on it, a reader of its
// events for the chain check, and a way to run a statement on it.
type engine struct {
	store  *investigate.Store
	events verify.EventReader
	exec   func(ctx context.Context, q string) error
	db     string
}

// engineNames are the engines every verb runs on, 18.16 first: its
// output is the goldens'.
var engineNames = []string{"clickhouse-18", "chdb-26"}

// engines stores the fixture twice (a redelivery) in ClickHouse 18.16 and
// in chDB, and returns each.
func engines(t *testing.T) map[string]engine {
	t.Helper()
	ctx := context.Background()
	server := chtest.New(t)
	embedded, chdbDB := chdbtest.New(t)
	var rows [][]any
	for _, e := range append(fixture(), credentialFixture()...) {
		rows = append(rows, ddl.EventRow(e, e.Seq, t0))
	}
	for i := 0; i < 2; i++ {
		if err := server.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
			t.Fatal(err)
		}
		insert := fmt.Sprintf("INSERT INTO %s.events_raw (%s) FORMAT JSONEachRow\n%s", chdbDB, strings.Join(ddl.EventColumns, ", "), jsonEachRow(rows))
		if err := embedded.Exec(ctx, insert); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]engine{
		"clickhouse-18": {store: investigate.New(server, server.Database()), events: server, exec: server.Exec, db: server.Database()},
		"chdb-26":       {store: investigate.New(embedded, chdbDB), events: embedded.Events(chdbDB), exec: embedded.Exec, db: chdbDB},
	}
}

// stores are the engines' Stores.
func stores(t *testing.T) map[string]*investigate.Store {
	out := map[string]*investigate.Store{}
	for name, e := range engines(t) {
		out[name] = e.store
	}
	return out
}

type verifier struct{ ch verify.EventReader }

func (v verifier) VerifyRanges(ctx context.Context, rs []investigate.Range) (*investigate.Verification, error) {
	vr := make([]verify.Range, len(rs))
	for i, r := range rs {
		vr[i] = verify.Range{Instance: r.Instance, Epoch: r.Epoch, From: r.From, To: r.To, First: r.First, Last: r.Last}
	}
	rep, err := verify.CheckRanges(ctx, v.ch, vr, nil)
	if err != nil {
		return nil, err
	}
	out := &investigate.Verification{Ranges: rs, Events: rep.Events, Findings: []string{}}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, f.String())
	}
	return out, nil
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from its golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestVerbsOnBothEngines(t *testing.T) {
	ctx := context.Background()
	stores := stores(t)
	cases := []struct {
		name string
		run  func(*investigate.Store) (*investigate.Report, error)
	}{
		{"session", func(s *investigate.Store) (*investigate.Report, error) { return s.Session(ctx, nil, "acme", "s-1") }},
		{"session_quoted_tenant", func(s *investigate.Store) (*investigate.Report, error) {
			return s.Session(ctx, nil, "o'brien\\co", "s-1")
		}},
		{"task", func(s *investigate.Store) (*investigate.Report, error) { return s.Task(ctx, nil, "acme", "task-1") }},
		{"agent", func(s *investigate.Store) (*investigate.Report, error) {
			return s.Agent(ctx, "acme", "agent:sub", t0, t0.Add(time.Hour))
		}},
		{"request", func(s *investigate.Store) (*investigate.Report, error) { return s.Request(ctx, "req-2") }},
		{"alert", func(s *investigate.Store) (*investigate.Report, error) { return s.Alert(ctx, nil, "01KALERT0001") }},
		{"blast_radius", func(s *investigate.Store) (*investigate.Report, error) {
			return s.BlastRadius(ctx, "acme", "agent:planner", t0)
		}},
		{"credential", func(s *investigate.Store) (*investigate.Report, error) {
			return s.Credential(ctx, nil, "acme", "jti-1")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, engine := range engineNames {
				rep, err := c.run(stores[engine])
				if err != nil {
					t.Fatalf("%s: %v", engine, err)
				}
				for _, f := range []investigate.Format{investigate.Table, investigate.JSON} {
					var b bytes.Buffer
					if err := investigate.Render(&b, rep, f); err != nil {
						t.Fatal(err)
					}
					name := c.name + "." + map[investigate.Format]string{investigate.Table: "txt", investigate.JSON: "json"}[f]
					if engine == "chdb-26" && *update {
						continue // the golden is 18.16's; chDB must match it
					}
					t.Run(engine+"/"+string(f), func(t *testing.T) { golden(t, name, b.Bytes()) })
				}
			}
		})
	}
}

func TestAbuseCases(t *testing.T) {
	ctx := context.Background()
	stores := stores(t)
	for engine, s := range stores {
		cases := []struct {
			name string
			run  func() error
			want error
		}{
			{"empty tenant", func() error { _, err := s.Session(ctx, nil, "", "s-1"); return err }, investigate.ErrBadInput},
			{"unknown session", func() error { _, err := s.Session(ctx, nil, "acme", "s-404"); return err }, investigate.ErrNotFound},
			// The other tenant's session of the same id is not acme's.
			{"session of another tenant", func() error { _, err := s.Session(ctx, nil, "globex", "s-1"); return err }, investigate.ErrNotFound},
			{"injection in the session id", func() error {
				_, err := s.Session(ctx, nil, "acme", "s-1' OR 1 = 1 OR session_id = '")
				return err
			}, investigate.ErrNotFound},
			{"injection in the tenant", func() error {
				_, err := s.Session(ctx, nil, `acme\' OR 1 = 1 --`, "s-1")
				return err
			}, investigate.ErrNotFound},
			{"unknown request", func() error { _, err := s.Request(ctx, "req-404"); return err }, investigate.ErrNotFound},
			{"unknown alert", func() error { _, err := s.Alert(ctx, nil, "01KALERT0404"); return err }, investigate.ErrNotFound},
			{"an event id that is no alert", func() error { _, err := s.Alert(ctx, nil, "01KEV0001"); return err }, investigate.ErrNotFound},
			{"agent range reversed", func() error {
				_, err := s.Agent(ctx, "acme", "agent:sub", t0.Add(time.Hour), t0)
				return err
			}, investigate.ErrBadInput},
			{"agent outside its range", func() error {
				_, err := s.Agent(ctx, "acme", "agent:sub", t0.Add(time.Hour), t0.Add(2*time.Hour))
				return err
			}, investigate.ErrNotFound},
			{"credential of another tenant", func() error { _, err := s.Credential(ctx, nil, "initech", "jti-1"); return err }, investigate.ErrNotFound},
			{"unknown credential", func() error { _, err := s.Credential(ctx, nil, "acme", "jti-404"); return err }, investigate.ErrNotFound},
			{"injection in the jti", func() error {
				_, err := s.Credential(ctx, nil, "acme", "x' OR 1 = 1 OR credential_jti != '")
				return err
			}, investigate.ErrNotFound},
			{"empty jti", func() error { _, err := s.Credential(ctx, nil, "acme", " "); return err }, investigate.ErrBadInput},
			{"blast radius without since", func() error {
				_, err := s.BlastRadius(ctx, "acme", "agent:sub", time.Time{})
				return err
			}, investigate.ErrBadInput},
		}
		for _, c := range cases {
			t.Run(engine+"/"+c.name, func(t *testing.T) {
				if err := c.run(); !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
			})
		}
	}
}

// TestSessionVerifies checks the chains of a session's events on each
// engine, then alters one of them in storage and expects the verb to say
// so.
func TestSessionVerifies(t *testing.T) {
	ctx := context.Background()
	for name, e := range engines(t) {
		t.Run(name, func(t *testing.T) {
			rep, err := e.store.Session(ctx, verifier{e.events}, "acme", "s-1")
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Verified.Clean() || len(rep.Verified.Ranges) != 1 || rep.Verified.Ranges[0].From != 1 || rep.Verified.Ranges[0].To != 8 ||
				rep.Verified.Ranges[0].Instance != "enf-1" || rep.Verified.Events == 0 {
				t.Fatalf("verification: %+v", rep.Verified)
			}
			// An attacker with the database rewrites the denied call as allowed.
			if err := e.exec(ctx, "ALTER TABLE "+e.db+".events_raw UPDATE effect = 'allow' WHERE tool = 'read_secret' AND kind = 'decision'"); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 30*time.Second, func() error {
				rep, err = e.store.Session(ctx, verifier{e.events}, "acme", "s-1")
				if !errors.Is(err, investigate.ErrUnverified) {
					return fmt.Errorf("tampered session still verifies: %v", err)
				}
				return nil
			})
			if rep == nil || rep.Verified.Clean() || !strings.Contains(strings.Join(rep.Verified.Findings, "\n"), "seq 5") {
				t.Fatalf("findings: %+v", rep.Verified)
			}
		})
	}
}

// TestHTMLReportInChromium renders a session's report in headless
// Chromium and checks what it shows: the title, one mark per event on the
// timeline with the denial in red and the alert marked, the delegation
// tree nested, the timeline's rows and the alert, and that the page
// fetches nothing.
func TestHTMLReportInChromium(t *testing.T) {
	chromiumtest.Require(t)
	ctx := context.Background()
	e := engines(t)["clickhouse-18"]
	rep, err := e.store.Session(ctx, verifier{e.events}, "acme", "s-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	if err := investigate.RenderHTML(&b, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"http:", "https:", "src=", "<script", "<link"} {
		if strings.Contains(b.String(), ref) {
			t.Fatalf("the page holds %q: it must be self-contained", ref)
		}
	}
	dom, err := chromiumtest.DumpDOM(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<h1 id="title">session s-1 of tenant acme</h1>`,
		`<li>user:alice<ul class="tree"><li>agent:planner<ul class="tree"><li>agent:sub</li></ul></li></ul></li>`,
		`<span class="ok">verifies</span>`,
		`<h2>timeline (9)</h2>`,
		`<td>Secret denied, then mail sent</td>`,
		`<td>deny-secrets</td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	if n := strings.Count(dom, `class="m `); n != 9 {
		t.Errorf("%d marks on the timeline, want 9 (8 events of the call chain, 1 alert)", n)
	}
	if n := strings.Count(dom, `class="m alert"`); n != 1 {
		t.Errorf("%d alert marks, want 1", n)
	}
	if n := strings.Count(dom, `class="m deny"`); n != 1 {
		t.Errorf("%d denial marks, want 1", n)
	}
	// What a person sees: the denial's red mark is on the screen.
	shot := filepath.Join(dir, "report.png")
	if err := chromiumtest.Screenshot(ctx, page, shot, 1400, 900); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	red, green := 0, 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			switch {
			case r>>8 == 0xcc && g>>8 == 0x22 && bl>>8 == 0x22:
				red++
			case r>>8 == 0x22 && g>>8 == 0xaa && bl>>8 == 0x22:
				green++
			}
		}
	}
	if red < 50 || green < 50 {
		t.Fatalf("screenshot shows %d red and %d green pixels: the timeline's marks are not drawn", red, green)
	}
}

// TestSessionMissingEventFound: an event deleted from a session's chain
// range is reported as such, on each engine.
func TestSessionMissingEventFound(t *testing.T) {
	ctx := context.Background()
	for name, e := range engines(t) {
		t.Run(name, func(t *testing.T) {
			if err := e.exec(ctx, "ALTER TABLE "+e.db+".events_raw DELETE WHERE instance = 'enf-1' AND seq = 3"); err != nil {
				t.Fatal(err)
			}
			var rep *investigate.Report
			poll.Until(t, 30*time.Second, func() error {
				var err error
				rep, err = e.store.Session(ctx, verifier{e.events}, "acme", "s-1")
				if !errors.Is(err, investigate.ErrUnverified) {
					return fmt.Errorf("a session missing an event still verifies: %v", err)
				}
				return nil
			})
			if !strings.Contains(strings.Join(rep.Verified.Findings, "\n"), "seq 3") {
				t.Fatalf("findings: %q", rep.Verified.Findings)
			}
		})
	}
}

// TestCredentialVerifies: what a credential touched verifies on each
// engine, its chain range spanning its issue to its revocation; a
// revocation rewritten in storage is found.
func TestCredentialVerifies(t *testing.T) {
	ctx := context.Background()
	for name, e := range engines(t) {
		t.Run(name, func(t *testing.T) {
			rep, err := e.store.Credential(ctx, verifier{e.events}, "acme", "jti-1")
			if err != nil {
				t.Fatal(err)
			}
			if r := rep.Verified.Ranges; !rep.Verified.Clean() || len(r) != 1 || r[0].Instance != "enf-3" || r[0].From != 1 || r[0].To != 5 || rep.Verified.Events == 0 {
				t.Fatalf("verification: %+v", rep.Verified)
			}
			// The revocation is rewritten to read as an issue.
			if err := e.exec(ctx, "ALTER TABLE "+e.db+".events_raw UPDATE credential_action = 'issued' WHERE event_id = '01KCR0005'"); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 30*time.Second, func() error {
				rep, err = e.store.Credential(ctx, verifier{e.events}, "acme", "jti-1")
				if !errors.Is(err, investigate.ErrUnverified) {
					return fmt.Errorf("a rewritten revocation still verifies: %v", err)
				}
				return nil
			})
			if !strings.Contains(strings.Join(rep.Verified.Findings, "\n"), "seq 5") {
				t.Fatalf("findings: %q", rep.Verified.Findings)
			}
		})
	}
}
