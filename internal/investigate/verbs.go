package investigate

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-io/rampart/schema/forensic"
)

// timelineColumns are a timeline's columns, in order.
var timelineColumns = []string{"time", "kind", "chain", "tool", "destination", "data_class", "effect",
	"policy_id", "rule_id", "policy_hash", "reason", "status", "duration_ms", "request_id", "instance", "epoch", "seq", "event_id"}

// timeline selects events_raw rows matching where (which must narrow by
// the sort key), each event once, in time order.
func timeline(where string) string {
	return `SELECT toString(event_time_us), kind,
    arrayStringConcat(arrayConcat([subject], chain_subjects), ' -> '),
    tool, destination, data_class, effect, policy_id, rule_id, policy_hash, reason,
    if(kind = 'response', toString(status), ''),
    if(kind = 'response', toString(round(duration_ns / 1000000, 3)), ''),
    request_id, instance, epoch, toString(seq), event_id
FROM (
    SELECT event_time_us, kind, subject, chain_subjects, tool, destination, data_class, effect, policy_id,
        rule_id, policy_hash, reason, status, duration_ns, request_id, instance, epoch, seq, event_id
    FROM {db}.events_raw
    WHERE ` + where + `
    LIMIT 1 BY event_id)
ORDER BY event_time_us, instance, seq`
}

func (s *Store) timeline(ctx context.Context, name, where string) (Section, error) {
	sec, err := s.section(ctx, name, timelineColumns, timeline(where))
	for _, r := range sec.Rows {
		r[0] = formatMicros(r[0])
	}
	return sec, err
}

// keyed restricts events_raw to the window event_keys gives for key under
// one of kinds in tenant, within [since, until] (each when not zero).
func keyed(tenant string, kinds []string, key string, since, until time.Time) string {
	return forensic.KeyWindow(tenant, kinds, key, timeBounds(since, until))
}

func timeBounds(since, until time.Time) string {
	var b strings.Builder
	if !since.IsZero() {
		fmt.Fprintf(&b, " AND event_time >= toDateTime(%s, 'UTC')", forensic.Quote(since.UTC().Format(time.DateTime)))
	}
	if !until.IsZero() {
		fmt.Fprintf(&b, " AND event_time <= toDateTime(%s, 'UTC')", forensic.Quote(until.UTC().Format(time.DateTime)))
	}
	return b.String()
}

// Session reconstructs one session: its timeline, the delegation chains
// drawn as trees, the alerts raised in it, and — with v — whether the
// record of these events verifies.
func (s *Store) Session(ctx context.Context, v Verifier, tenant, session string) (*Report, error) {
	if err := need(tenant, session); err != nil {
		return nil, err
	}
	where := keyed(tenant, []string{"session"}, session, time.Time{}, time.Time{}) + `
      AND session_id = ` + forensic.Quote(session)
	tl, err := s.timeline(ctx, "timeline", where)
	if err != nil {
		return nil, err
	}
	if len(tl.Rows) == 0 {
		return nil, fmt.Errorf("%w: session %q of tenant %q", ErrNotFound, session, tenant)
	}
	rep := &Report{Title: fmt.Sprintf("session %s of tenant %s", session, tenant)}
	al, err := s.alerts(ctx, where)
	if err != nil {
		return nil, err
	}
	rep.Sections = append(rep.Sections, tl, al)
	rep.Chains = chainTree(distinct(tl, "chain"))
	return verified(ctx, v, rep, tl)
}

// Task is Session for every event of one task, across its sessions.
func (s *Store) Task(ctx context.Context, v Verifier, tenant, task string) (*Report, error) {
	if err := need(tenant, task); err != nil {
		return nil, err
	}
	where := keyed(tenant, []string{"task"}, task, time.Time{}, time.Time{}) + `
      AND task_id = ` + forensic.Quote(task)
	tl, err := s.timeline(ctx, "timeline", where)
	if err != nil {
		return nil, err
	}
	if len(tl.Rows) == 0 {
		return nil, fmt.Errorf("%w: task %q of tenant %q", ErrNotFound, task, tenant)
	}
	rep := &Report{Title: fmt.Sprintf("task %s of tenant %s", task, tenant)}
	sessions, err := s.section(ctx, "sessions", []string{"session_id", "events", "first", "last"},
		`SELECT session_id, toString(count()), toString(min(event_time), 'UTC'), toString(max(event_time), 'UTC') FROM (
    SELECT session_id, event_time FROM {db}.events_raw WHERE `+where+` LIMIT 1 BY event_id)
GROUP BY session_id ORDER BY min(event_time), session_id`)
	if err != nil {
		return nil, err
	}
	al, err := s.alerts(ctx, where)
	if err != nil {
		return nil, err
	}
	rep.Sections = append(rep.Sections, tl, sessions, al)
	rep.Chains = chainTree(distinct(tl, "chain"))
	return verified(ctx, v, rep, tl)
}

// Request shows one request id: request, decision (rule, policy hash),
// response, and any other event carrying it (a backend's own report).
func (s *Store) Request(ctx context.Context, id string) (*Report, error) {
	if err := need(id); err != nil {
		return nil, err
	}
	where := forensic.RequestWindow(id) + `
      AND request_id = ` + forensic.Quote(id)
	tl, err := s.timeline(ctx, "events", where)
	if err != nil {
		return nil, err
	}
	if len(tl.Rows) == 0 {
		return nil, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	return &Report{Title: "request " + id, Sections: []Section{tl}, Chains: chainTree(distinct(tl, "chain"))}, nil
}

// identityKinds are the event_keys kinds an identity can appear under:
// as the current actor, as the principal, anywhere in a chain.
var identityKinds = []string{"actor", "principal", "chain"}

// Agent summarises what actor did in tenant over [since, until].
func (s *Store) Agent(ctx context.Context, tenant, actor string, since, until time.Time) (*Report, error) {
	if err := need(tenant, actor); err != nil {
		return nil, err
	}
	if since.IsZero() || until.IsZero() || !since.Before(until) {
		return nil, fmt.Errorf("%w: -since must be before -until", ErrBadInput)
	}
	where := keyed(tenant, []string{"actor"}, actor, since, until) + `
      AND actor = ` + forensic.Quote(actor)
	rep, err := s.summary(ctx, where, false)
	if err != nil {
		return nil, err
	}
	rep.Title = fmt.Sprintf("agent %s of tenant %s, %s to %s", actor, tenant, since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	return rep, nil
}

// BlastRadius is everything reachable from a compromised identity (an
// agent or a principal, wherever it appears in a chain) since a time.
func (s *Store) BlastRadius(ctx context.Context, tenant, identity string, since time.Time) (*Report, error) {
	if err := need(tenant, identity); err != nil {
		return nil, err
	}
	if since.IsZero() {
		return nil, fmt.Errorf("%w: -since is required", ErrBadInput)
	}
	where := keyed(tenant, identityKinds, identity, since, time.Time{}) + `
      AND (subject = ` + forensic.Quote(identity) + ` OR has(chain_subjects, ` + forensic.Quote(identity) + `))`
	rep, err := s.summary(ctx, where, true)
	if err != nil {
		return nil, err
	}
	rep.Title = fmt.Sprintf("blast radius of %s in tenant %s since %s", identity, tenant, since.UTC().Format(time.RFC3339))
	// The identity itself is not "another" agent in its chains.
	if others := rep.Section("other agents"); others != nil {
		kept := others.Rows[:0]
		for _, r := range others.Rows {
			if r[0] != identity {
				kept = append(kept, r)
			}
		}
		others.Rows = kept
	}
	return rep, nil
}

// summary is the per-dimension tally behind agent and blast-radius. The
// events are read once for all the tallies (each event counted under each
// of its dimensions, by ARRAY JOIN), once for the denials and once for the
// alerts: every read is a scan of the window, so fewer reads is faster.
func (s *Store) summary(ctx context.Context, where string, radius bool) (*Report, error) {
	base := `(SELECT event_id, event_time, kind, session_id, task_id, subject, chain_subjects, tool, destination,
        data_class, effect, rule_id, policy_id, reason, event_time_us
    FROM {db}.events_raw WHERE ` + where + ` LIMIT 1 BY event_id)`
	tallies, err := s.q.Query(ctx, strings.ReplaceAll(`SELECT d.1 AS dim, d.2 AS value, toString(count()),
    toString(countIf(kind = 'decision' AND effect = 'allow')), toString(countIf(kind = 'decision' AND effect = 'deny')),
    toString(min(event_time), 'UTC'), toString(max(event_time), 'UTC')
FROM `+base+`
ARRAY JOIN arrayConcat(
    [('session', session_id), ('principal', subject), ('tool', tool), ('destination', destination),
     ('data class', data_class), ('task', task_id)],
    arrayMap(a -> ('agent', a), chain_subjects)) AS d
WHERE d.2 != '' OR d.1 IN ('tool', 'destination', 'data class')
GROUP BY dim, value
ORDER BY dim, value`, "{db}", s.db))
	if err != nil {
		return nil, fmt.Errorf("investigate: tallies: %w", err)
	}
	by := map[string][][]string{}
	for _, r := range tallies {
		if len(r) != 7 {
			return nil, fmt.Errorf("investigate: tallies: %d columns, want 7", len(r))
		}
		by[r[0]] = append(by[r[0]], r[1:])
	}
	pick := func(name, dim string, columns []string, cells func(r []string) []string, decisionsOnly bool) Section {
		sec := Section{Name: name, Columns: columns, Rows: [][]string{}}
		for _, r := range by[dim] {
			if decisionsOnly && r[2] == "0" && r[3] == "0" {
				continue // a dimension seen only on requests and responses
			}
			sec.Rows = append(sec.Rows, cells(r))
		}
		return sec
	}
	events := func(r []string) []string { return []string{r[0], r[1]} }
	verdicts := func(r []string) []string { return []string{r[0], r[2], r[3]} }
	sessions := pick("sessions", "session", []string{"session_id", "events", "first", "last"},
		func(r []string) []string { return []string{r[0], r[1], r[4], r[5]} }, false)
	sort.SliceStable(sessions.Rows, func(i, j int) bool { return sessions.Rows[i][2] < sessions.Rows[j][2] })
	rep := &Report{Sections: []Section{
		sessions,
		pick("principals", "principal", []string{"principal", "events"}, events, false),
		pick("tools", "tool", []string{"tool", "allowed", "denied"}, verdicts, true),
		pick("destinations", "destination", []string{"destination", "allowed", "denied"}, verdicts, true),
		pick("data classes", "data class", []string{"data_class", "allowed", "denied"}, verdicts, true),
	}}
	if len(sessions.Rows) == 0 {
		return nil, fmt.Errorf("%w in that range", ErrNotFound)
	}
	denials, err := s.section(ctx, "denials", []string{"time", "session_id", "tool", "policy_id", "rule_id", "reason"},
		`SELECT toString(event_time_us), session_id, tool, policy_id, rule_id, reason FROM `+base+
			` WHERE kind = 'decision' AND effect = 'deny' ORDER BY event_time_us, session_id`)
	if err != nil {
		return nil, err
	}
	for _, r := range denials.Rows {
		r[0] = formatMicros(r[0])
	}
	alerts, err := s.alerts(ctx, where)
	if err != nil {
		return nil, err
	}
	rep.Sections = append(rep.Sections, denials, alerts)
	if radius {
		rep.Sections = append(rep.Sections,
			pick("tasks", "task", []string{"task_id", "events"}, events, false),
			pick("other agents", "agent", []string{"agent", "events"}, events, false))
	}
	return rep, nil
}

// alertColumns are an alert's columns, in order.
var alertColumns = []string{"time", "alert_id", "rule_id", "title", "severity", "tags", "matched", "first", "last"}

// alerts lists the alerts among the events where selects: a detection's
// alert carries the identity (session, task) of the event that completed it.
func (s *Store) alerts(ctx context.Context, where string) (Section, error) {
	sec, err := s.section(ctx, "alerts", alertColumns, `SELECT toString(event_time_us), event_id, alert_rule_id, alert_title,
    alert_severity, arrayStringConcat(alert_tags, ','), toString(alert_count), toString(alert_first_us), toString(alert_last_us)
FROM (
    SELECT event_time_us, event_id, alert_rule_id, alert_title, alert_severity, alert_tags, alert_count, alert_first_us, alert_last_us
    FROM {db}.events_raw
    WHERE `+where+` AND kind = 'alert'
    LIMIT 1 BY event_id)
ORDER BY event_time_us, event_id`)
	for _, r := range sec.Rows {
		r[0], r[7], r[8] = formatMicros(r[0]), formatMicros(r[7]), formatMicros(r[8])
	}
	return sec, err
}

// Alert shows one alert and its evidence as a timeline, with the
// delegation chains in it and — with v — whether the evidence verifies.
func (s *Store) Alert(ctx context.Context, v Verifier, id string) (*Report, error) {
	if err := need(id); err != nil {
		return nil, err
	}
	keys := `FROM {db}.event_keys WHERE key_kind = 'alert' AND key = ` + forensic.Quote(id)
	where := `tenant IN (SELECT tenant ` + keys + `)
      AND event_time >= (SELECT min(event_time) ` + keys + `)
      AND event_time <= (SELECT max(event_time) ` + keys + `)
      AND event_id = ` + forensic.Quote(id)
	al, err := s.alerts(ctx, where)
	if err != nil {
		return nil, err
	}
	if len(al.Rows) == 0 {
		return nil, fmt.Errorf("%w: alert %q", ErrNotFound, id)
	}
	// The evidence: its ids and the span and tenant they lie in.
	ev, err := s.q.Query(ctx, strings.ReplaceAll(`SELECT tenant, toString(alert_first_us), toString(alert_last_us), alert_evidence
FROM {db}.events_raw WHERE `+where+` LIMIT 1`, "{db}", s.db))
	if err != nil {
		return nil, fmt.Errorf("investigate: alert evidence: %w", err)
	}
	rep := &Report{Title: "alert " + id, Sections: []Section{al}}
	ids := parseArray(ev[0][3])
	if len(ids) == 0 {
		rep.Sections = append(rep.Sections, Section{Name: "evidence", Columns: timelineColumns, Rows: [][]string{}})
		return rep, nil
	}
	quoted := make([]string, len(ids))
	for i, x := range ids {
		quoted[i] = forensic.Quote(x)
	}
	first, _ := strconv.ParseInt(ev[0][1], 10, 64)
	last, _ := strconv.ParseInt(ev[0][2], 10, 64)
	evWhere := `tenant = ` + forensic.Quote(ev[0][0]) + fmt.Sprintf(`
      AND event_time >= toDateTime(%d) AND event_time <= toDateTime(%d)
      AND event_id IN (%s)`, first/1_000_000, last/1_000_000+1, strings.Join(quoted, ", "))
	tl, err := s.timeline(ctx, "evidence", evWhere)
	if err != nil {
		return nil, err
	}
	rep.Sections = append(rep.Sections, tl)
	rep.Chains = chainTree(distinct(tl, "chain"))
	if len(tl.Rows) == 0 {
		return rep, nil
	}
	return verified(ctx, v, rep, tl)
}

// verified checks, with v, the chain ranges the timeline tl spans and
// records the outcome in rep: ErrUnverified, with rep, when they do not
// verify. Without v, rep is returned as it is.
func verified(ctx context.Context, v Verifier, rep *Report, tl Section) (*Report, error) {
	return verifiedRanges(ctx, v, rep, ranges(tl))
}

// verifiedRanges is verified over chain ranges given.
func verifiedRanges(ctx context.Context, v Verifier, rep *Report, rs []Range) (*Report, error) {
	if v == nil {
		return rep, nil
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Instance != rs[j].Instance {
			return rs[i].Instance < rs[j].Instance
		}
		return rs[i].Epoch < rs[j].Epoch
	})
	var err error
	if rep.Verified, err = v.VerifyRanges(ctx, rs); err != nil {
		return nil, err
	}
	if !rep.Verified.Clean() {
		return rep, ErrUnverified
	}
	return rep, nil
}

// parseArray reads an Array(String) as Query prints it: ['a','b'].
func parseArray(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	var out []string
	var cur strings.Builder
	in, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			cur.WriteByte(c)
			esc = false
		case c == '\\' && in:
			esc = true
		case c == '\'':
			if in {
				out = append(out, cur.String())
				cur.Reset()
			}
			in = !in
		case in:
			cur.WriteByte(c)
		}
	}
	return out
}

func distinct(sec Section, column string) []string {
	col := -1
	for i, c := range sec.Columns {
		if c == column {
			col = i
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range sec.Rows {
		if !seen[r[col]] {
			seen[r[col]] = true
			out = append(out, r[col])
		}
	}
	return out
}

// ranges are the runs of each chain the timeline's events span.
func ranges(tl Section) []Range {
	byChain := map[[2]string]*Range{}
	for _, r := range tl.Rows {
		if r[15] == "" {
			continue // not chained
		}
		seq, err := strconv.ParseUint(r[16], 10, 64)
		if err != nil {
			continue
		}
		at, _ := time.Parse(timeLayout, r[0])
		k := [2]string{r[14], r[15]}
		if g, ok := byChain[k]; !ok {
			byChain[k] = &Range{Instance: k[0], Epoch: k[1], From: seq, To: seq, First: at, Last: at}
		} else {
			g.From, g.To = min(g.From, seq), max(g.To, seq)
			if at.Before(g.First) {
				g.First = at
			}
			if at.After(g.Last) {
				g.Last = at
			}
		}
	}
	out := make([]Range, 0, len(byChain))
	for _, g := range byChain {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Instance != out[j].Instance {
			return out[i].Instance < out[j].Instance
		}
		return out[i].Epoch < out[j].Epoch
	})
	return out
}
