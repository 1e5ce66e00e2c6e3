package investigate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-io/rampart/schema/forensic"
)

// credentialColumns are the credential events' section: its issue and
// revocation.
var credentialColumns = []string{"time", "action", "audience", "scope", "expires", "reason", "chain", "task_id", "request_id", "event_id"}

// credentialUseColumns are the decisions' section: every call the
// credential was put on.
var credentialUseColumns = []string{"time", "chain", "task_id", "tool", "destination", "effect", "rule_id", "request_id", "event_id"}

// Credential answers what one task credential (its jti) touched in
// tenant: its issue and revocation, every decision that put it on a
// call, the delegation chains it was minted for, and — with v — whether
// the record of those events verifies. Backend calls that presented it
// join the decisions once backends report them.
func (s *Store) Credential(ctx context.Context, v Verifier, tenant, jti string) (*Report, error) {
	if err := need(tenant, jti); err != nil {
		return nil, err
	}
	rows, err := s.q.Query(ctx, forensic.CredentialUse(s.db, tenant, jti))
	if err != nil {
		return nil, fmt.Errorf("investigate: credential: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: credential %q of tenant %q", ErrNotFound, jti, tenant)
	}
	issued := Section{Name: "credential", Columns: credentialColumns, Rows: [][]string{}}
	used := Section{Name: "decisions", Columns: credentialUseColumns, Rows: [][]string{}}
	var chains []string
	var rs []Range
	for _, r := range rows {
		if len(r) != 19 {
			return nil, fmt.Errorf("investigate: credential: %d columns, want 19", len(r))
		}
		at := formatMicros(r[18])
		switch r[1] {
		case "credential":
			expires := ""
			if r[13] != "0" {
				expires = formatMicros(r[13])
			}
			issued.Rows = append(issued.Rows, []string{at, r[10], r[11], r[12], expires, r[14], r[2], r[3], r[8], r[9]})
		default:
			used.Rows = append(used.Rows, []string{at, r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]})
		}
		chains = append(chains, r[2])
		rs = addToRange(rs, r[15], r[16], r[17], r[18])
	}
	rep := &Report{Title: fmt.Sprintf("credential %s of tenant %s", jti, tenant), Sections: []Section{issued, used}, Chains: chainTree(dedupe(chains))}
	return verifiedRanges(ctx, v, rep, rs)
}

// addToRange widens the range of the event's chain (instance, epoch) to
// hold its seq and time (microseconds); an unchained event adds nothing.
func addToRange(rs []Range, instance, epoch, seqText, micros string) []Range {
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if epoch == "" || err != nil {
		return rs
	}
	us, _ := strconv.ParseInt(micros, 10, 64)
	at := time.UnixMicro(us).UTC()
	for i := range rs {
		if g := &rs[i]; g.Instance == instance && g.Epoch == epoch {
			g.From, g.To = min(g.From, seq), max(g.To, seq)
			if at.Before(g.First) {
				g.First = at
			}
			if at.After(g.Last) {
				g.Last = at
			}
			return rs
		}
	}
	return append(rs, Range{Instance: instance, Epoch: epoch, From: seq, To: seq, First: at, Last: at})
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if x = strings.TrimSpace(x); x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
