package demo

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-io/rampart/internal/investigate"
)

// Print writes the report for a person at a terminal.
func (r *Report) Print(w io.Writer) {
	status := map[int]int{}
	for _, res := range r.Results {
		status[res.Status]++
	}
	fmt.Fprintf(w, "\nRampart demo: %d tool calls from %d tenants, %d agent sessions (database %s)\n",
		len(r.Results), len(Tenants), len(r.Sessions), r.Database)
	fmt.Fprintf(w, "  at the client: %d allowed (200), %d denied by policy (403), %d unauthenticated (401)\n",
		status[http.StatusOK], status[http.StatusForbidden], status[http.StatusUnauthorized])
	fmt.Fprintf(w, "  the tool backend served %d requests\n", len(r.BackendSeen))

	probes := make([][]string, len(r.Probes))
	for i, p := range r.Probes {
		probes[i] = []string{p.Name, strconv.Itoa(p.Status), p.Code, p.RequestID}
	}
	section(w, "Attacks on the boundary (refused, recorded, never forwarded)", []string{"probe", "status", "code", "recorded as"}, probes)
	section(w, "Events in ClickHouse by kind", []string{"kind", "events"}, r.ByKind)
	section(w, "Decisions by tenant", []string{"tenant", "effect", "decisions"}, named(r.Decisions))
	section(w, "Sessions (correlator)", []string{"tenant", "session", "principal", "agents", "chain", "first seen", "last seen", "requests", "allowed", "denied", "responses"}, r.Sessions)
	section(w, fmt.Sprintf("Session %s/%s reconstructed", r.TimelineTenant, r.TimelineSession),
		[]string{"time", "seq", "kind", "principal -> acting agents", "tool", "effect", "policy", "rule", "reason", "status", "request"}, r.Timeline)
	var alerts [][]string
	quiet := map[string]int{} // low and info alerts by tenant and rule, counted
	var quietKeys []string
	for _, a := range r.Alerts {
		if a[2] == "low" || a[2] == "info" {
			k := a[1] + "\t" + a[2] + "\t" + a[3] + "\t" + a[4]
			if quiet[k] == 0 {
				quietKeys = append(quietKeys, k)
			}
			quiet[k]++
			continue
		}
		alerts = append(alerts, []string{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[8]})
	}
	for _, k := range quietKeys {
		f := strings.Split(k, "\t")
		alerts = append(alerts, []string{"", f[0], f[1], f[2], f[3], fmt.Sprintf("(%d groups)", quiet[k]), "", ""})
	}
	section(w, "Alerts raised by the correlator's detections", []string{"raised", "tenant", "severity", "rule", "title", "group", "matched", "alert"}, alerts)
	for _, e := range r.Evidence {
		section(w, fmt.Sprintf("Evidence of %s alert %s (%s, %s)", e.Alert[2], e.Alert[8], e.Alert[3], e.Alert[5]),
			[]string{"time", "kind", "principal -> acting agents", "session", "tool", "destination", "data class", "effect", "rule", "request", "event"}, e.Events)
	}
	section(w, fmt.Sprintf("Task credentials minted (%s, audience %s): the backend got these, never the agent's token", CredentialIssuer, CredentialAudience),
		[]string{"issued", "tenant", "task", "principal", "audience", "scope", "jti", "expires"}, r.Credentials)
	var handed []string
	for k, n := range r.Handed {
		handed = append(handed, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(handed)
	fmt.Fprintf(w, "  allowed calls by what the backend was handed (tool, token, calls): %s\n", strings.Join(handed, "; "))
	bypassed := "no alert"
	for _, a := range r.Alerts {
		if a[3] == BypassAlert {
			bypassed = fmt.Sprintf("%s alert %s (%s)", a[2], a[8], a[3])
		}
	}
	section(w, "Simulated bypass: the credential of a forwarded read_file, replayed straight to the file store (behind Rampart's backend middleware, not the enforcer)",
		[]string{"credential of", "file store answered", "code", "found by"},
		[][]string{{r.Bypass.Of, strconv.Itoa(r.Bypass.Status), r.Bypass.Code, bypassed}})
	if t := r.Task; t != nil {
		steps := make([][]string, len(t.Steps))
		for i, s := range t.Steps {
			steps[i] = []string{s.What, strconv.Itoa(s.Status), s.Code, s.Handed, s.RequestID}
		}
		section(w, fmt.Sprintf("Task %s: declared, worked under with minted credentials, completed, refused after", t.ID),
			[]string{"step", "status", "code", "backend handed a token of", "request"}, steps)
		section(w, fmt.Sprintf("Credentials of task %s: each issued one revoked at its end (RAMPART_REVOCATIONS)", t.ID),
			[]string{"time", "action", "reason", "jti", "audience", "expires"}, t.Credentials)
	}
	if r.Investigation != nil {
		fmt.Fprintf(w, "\n== Investigation: rampart investigate blast-radius %s %s -since %s -database %s\n",
			incidentTenant, incidentActor, r.Started.UTC().Format(time.RFC3339), r.Database)
		if err := investigate.Render(w, r.Investigation, investigate.Table); err != nil {
			fmt.Fprintf(w, "(investigation not rendered: %v)\n", err)
		}
	}
	fmt.Fprintf(w, "\nFinished in %s.\n", r.Elapsed.Round(1e6))
}

func section(w io.Writer, title string, header []string, rows [][]string) {
	fmt.Fprintf(w, "\n== %s\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// named shows the empty tenant of unidentified callers as such.
func named(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = append([]string(nil), r...)
		if out[i][0] == "" {
			out[i][0] = "(unidentified)"
		}
	}
	return out
}
