package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/schema/event"
)

// TestDetectTestExitCodes: 0 (nil) when every case passes, 1 when one
// fails, 2 when the rules or fixtures do not load or the usage is wrong.
func TestDetectTestExitCodes(t *testing.T) {
	const ruleSrc = `id: burst
title: burst
description: two denials
severity: low
tags: [owasp-llm:LLM06]
match: effect == "deny"
group_by: [actor]
event_count: {window: 1m, gte: 2}
`
	fixture := func(want string) string {
		return `cases:
  - name: two denials
    start: 2026-03-01T10:00:00Z
    events:
      - {id: a, at: 0s, kind: decision, tenant: acme, identity: {sub: "user:x"}, request: {method: GET, host: h, path: /}, decision: {effect: deny}}
      - {id: b, at: 1s, kind: decision, tenant: acme, identity: {sub: "user:x"}, request: {method: GET, host: h, path: /}, decision: {effect: deny}}
    want: ` + want + "\n"
	}
	cases := []struct {
		name     string
		rule     string
		fixture  string
		args     []string
		wantCode int // 0: nil error
	}{
		{"pass", ruleSrc, fixture(`[{rule: burst, evidence: [a, b]}]`), nil, 0},
		{"fail", ruleSrc, fixture(`[]`), nil, 1},
		{"bad rule", ruleSrc + "bogus: 1\n", fixture(`[]`), nil, 2},
		{"bad fixture", ruleSrc, "cases: [{name: x, nope: 1}]\n", nil, 2},
		{"a flag detect test does not read", ruleSrc, fixture(`[]`), []string{"-config", "x"}, 2},
		{"verbose", ruleSrc, fixture(`[{rule: burst, evidence: [a, b]}]`), []string{"-v"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range map[string]string{"burst.yaml": c.rule, "burst_test.yaml": c.fixture} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := runDetect(context.Background(), append(append([]string{"test"}, c.args...), dir))
			got := 0
			var ee exitError
			switch {
			case err == nil:
			case errors.As(err, &ee):
				got = ee.code
			case errors.Is(err, flag.ErrHelp):
				got = 2 // main exits 2 on flag.ErrHelp
			default:
				got = 1
			}
			if got != c.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, c.wantCode)
			}
		})
	}
	if err := runDetect(context.Background(), []string{"replay-me"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("an unknown sub-verb: %v, want usage", err)
	}
}

// TestDetectTestRunsTheShippedPack: the pack's fixtures pass through the
// CLI as through go test.
func TestDetectTestRunsTheShippedPack(t *testing.T) {
	if err := runDetect(context.Background(), []string{"test", "../../correlator/rules"}); err != nil {
		t.Fatal(err)
	}
}

// TestDetectReplayUsage: a replay needs a non-empty range and rules that
// load; each mistake is a usage error (exit status 2) before ClickHouse
// is reached.
func TestDetectReplayUsage(t *testing.T) {
	badRules := t.TempDir()
	if err := os.WriteFile(filepath.Join(badRules, "x.yaml"), []byte("id: x\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"no range":        nil,
		"no end":          {"-from", "2026-11-28T10:00:00Z"},
		"bad time":        {"-from", "yesterday", "-to", "2026-11-28T10:00:00Z"},
		"reversed":        {"-from", "2026-11-28T10:00:00Z", "-to", "2026-11-28T09:00:00Z"},
		"rules that fail": {"-from", "2026-11-28T09:00:00Z", "-to", "2026-11-28T10:00:00Z", "-rules", badRules},
		"an argument":     {"-from", "2026-11-28T09:00:00Z", "-to", "2026-11-28T10:00:00Z", "extra"},
	} {
		var ee exitError
		if err := runDetectReplay(context.Background(), args); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%s: %v, want exit status 2", name, err)
		}
	}
}

// TestReplayPrintsAlerts: one line per alert, in text or as the v1 event.
func TestReplayPrintsAlerts(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC)
	a := &event.Event{V: event.Version, ID: "01ALERT", Kind: event.KindAlert, Time: at, Tenant: "o'brien", Instance: "replay", Seq: 1,
		Alert: &event.Alert{RuleID: "burst", Title: "burst", Severity: event.SeverityHigh, Group: []event.GroupValue{{Field: "actor", Value: "user:a b"}},
			First: at.Add(-time.Second), Last: at, Count: 2, Evidence: []string{"01A", "01B"}}}
	var text, js bytes.Buffer
	if err := printAlert(&text, a); err != nil {
		t.Fatal(err)
	}
	want := `2026-11-28T10:00:01Z "o'brien" high burst group=[actor="user:a b"] matched=2 first=2026-11-28T10:00:00Z last=2026-11-28T10:00:01Z evidence=[01A 01B] id=01ALERT` + "\n"
	if text.String() != want {
		t.Errorf("text:\n got %q\nwant %q", text.String(), want)
	}
	if err := printAlertJSON(&js, a); err != nil {
		t.Fatal(err)
	}
	back, err := event.Decode(bytes.TrimSuffix(js.Bytes(), []byte("\n")))
	if err != nil || back.ID != a.ID || back.Alert.RuleID != "burst" || strings.Count(js.String(), "\n") != 1 {
		t.Errorf("json line %q: %v", js.String(), err)
	}
}
