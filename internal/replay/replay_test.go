package replay_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/internal/replay"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/chtest"
)

const burst = `id: burst
title: burst of denials
description: two denials of one actor within a minute
severity: medium
tags: [owasp-llm:LLM06]
match: effect == "deny"
group_by: [actor]
event_count: {window: 1m, gte: 2}
`

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func rules(t *testing.T) *detect.RuleSet {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "burst.yaml"), []byte(burst), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := detect.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

type stored struct {
	e         *event.Event
	streamSeq uint64
}

func deny(id, tenant, actor string, at time.Duration) *event.Event {
	return &event.Event{V: event.Version, ID: id, Kind: event.KindDecision, Time: t0.Add(at), Tenant: tenant, Instance: "enf-1", Seq: 1,
		Identity: &event.Identity{Subject: actor}, Request: &event.Request{Method: "POST", Host: "h", Path: "/mcp"},
		Decision: &event.Decision{Effect: event.EffectDeny, PolicyID: "p", RuleID: "deny-shell"}}
}

// TestReplayRaisesWhatTheEngineWould: replaying stored history gives the
// alerts the engine raises over the same events in stream order — the
// same ids a live correlator would have published — for the range and
// tenant asked, without feeding stored alerts back in.
func TestReplayRaisesWhatTheEngineWould(t *testing.T) {
	ctx := context.Background()
	ch := chtest.New(t)
	rs := rules(t)
	history := []stored{
		{deny("01A", "acme", "user:alice", 0), 1},
		{deny("01C", "globex", "user:carol", 2*time.Second), 2},
		{deny("01B", "acme", "user:alice", time.Second), 3}, // carried after a later event
		{deny("01D", "globex", "user:carol", 3*time.Second), 4},
		{deny("01E", "acme", "user:bob", 4*time.Second), 5}, // alone: no alert
		{deny("01Z", "acme", "user:alice", 2*time.Hour), 6}, // past the range
	}
	// A stored alert of the same rule, and its correlator's checkpoint:
	// not input.
	old := detect.Run(rs, []*event.Event{history[0].e, history[2].e}, time.Time{}, detect.Options{})
	if len(old) != 1 {
		t.Fatalf("the rule raised %d alerts, want 1", len(old))
	}
	old[0].Instance, old[0].Seq = correlator.InstancePrefix+"1", 1
	cp := deny("01CP", "acme", "", time.Minute)
	cp.Kind, cp.Instance, cp.Seq, cp.Decision, cp.Checkpoint = event.KindCheckpoint, correlator.InstancePrefix+"1", 2, nil, &event.Checkpoint{KeyID: "k"}
	history = append(history, stored{old[0], 7}, stored{cp, 8})
	var rows [][]any
	for _, s := range history {
		rows = append(rows, ddl.EventRow(s.e, s.streamSeq, t0))
	}
	if err := ch.Insert(ctx, "events_raw", ddl.EventColumns, rows); err != nil {
		t.Fatal(err)
	}

	inStreamOrder := []*event.Event{history[0].e, history[1].e, history[2].e, history[3].e, history[4].e}
	want := detect.Run(rs, inStreamOrder, t0.Add(time.Hour), detect.Options{})
	if len(want) != 2 {
		t.Fatalf("the engine raised %d alerts over the history, want 2", len(want))
	}
	for _, c := range []struct {
		name    string
		r       chstore.Range
		want    []*event.Event
		skipped int
	}{
		{"all", chstore.Range{From: t0, To: t0.Add(time.Hour)}, want, 2},
		{"one tenant", chstore.Range{From: t0, To: t0.Add(time.Hour), Tenant: "globex"}, []*event.Event{want[1]}, 0},
		{"one tenant with the correlator's records", chstore.Range{From: t0, To: t0.Add(time.Hour), Tenant: "acme"}, []*event.Event{want[0]}, 2},
		{"cut before the second denial", chstore.Range{From: t0, To: t0.Add(time.Second)}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []*event.Event
			res, err := replay.Run(ctx, ch, replay.Options{Range: c.r, Rules: rs}, func(a *event.Event) error {
				got = append(got, a)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) || res.Alerts != len(c.want) || res.Skipped != c.skipped {
				t.Fatalf("%d alerts (%+v), want %d", len(got), res, len(c.want))
			}
			for i := range got {
				if got[i].ID != c.want[i].ID || !reflect.DeepEqual(got[i].Alert.Evidence, c.want[i].Alert.Evidence) {
					t.Errorf("alert %d: %s %v, want %s %v", i, got[i].ID, got[i].Alert.Evidence, c.want[i].ID, c.want[i].Alert.Evidence)
				}
			}
		})
	}
	if _, err := replay.Run(ctx, ch, replay.Options{Range: chstore.Range{From: t0, To: t0}, Rules: rs}, nil); err == nil {
		t.Error("an empty range replayed")
	}
	if _, err := replay.Run(ctx, ch, replay.Options{Range: chstore.Range{From: t0, To: t0.Add(time.Hour)}}, nil); err == nil {
		t.Error("a replay without rules ran")
	}
}
