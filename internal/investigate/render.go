package investigate

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
)

// Format is how a report is printed.
type Format string

// The formats.
const (
	Table Format = "table"
	JSON  Format = "json"
	CSV   Format = "csv"
)

// Render writes r in format f.
func Render(w io.Writer, r *Report, f Format) error {
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	case CSV:
		return renderCSV(w, r)
	case Table, "":
		return renderTable(w, r)
	}
	return fmt.Errorf("%w: unknown format %q", ErrBadInput, f)
}

// renderCSV writes each section as one CSV block whose first column names
// the section, so one stream holds them all and a tool can split on it.
func renderCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	for _, s := range r.Sections {
		if err := cw.Write(append([]string{"section"}, s.Columns...)); err != nil {
			return err
		}
		for _, row := range s.Rows {
			if err := cw.Write(append([]string{s.Name}, row...)); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// hidden are columns the table leaves out (they stay in JSON and CSV):
// epochs and event ids matter to verification and tools, not to reading.
var hidden = map[string]bool{"epoch": true, "event_id": true}

func renderTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "%s\n", r.Title)
	if len(r.Chains) > 0 {
		fmt.Fprintf(w, "\ndelegation\n")
		var draw func(n *Node, prefix string, last bool, root bool)
		draw = func(n *Node, prefix string, last bool, root bool) {
			branch, next := "├─ ", "│  "
			if last {
				branch, next = "└─ ", "   "
			}
			if root {
				branch, next = "", ""
			}
			fmt.Fprintf(w, "  %s%s%s\n", prefix, branch, n.Name)
			for i, c := range n.Children {
				draw(c, prefix+next, i == len(n.Children)-1, false)
			}
		}
		for _, n := range r.Chains {
			draw(n, "", true, true)
		}
	}
	for _, s := range r.Sections {
		fmt.Fprintf(w, "\n%s (%d)\n", s.Name, len(s.Rows))
		if len(s.Rows) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		var keep []int
		for i, c := range s.Columns {
			if !hidden[c] {
				keep = append(keep, i)
			}
		}
		line := func(cells []string) {
			out := make([]string, len(keep))
			for j, i := range keep {
				out[j] = cells[i]
				if out[j] == "" {
					out[j] = "-"
				}
			}
			fmt.Fprintf(tw, "  %s\n", strings.Join(out, "\t"))
		}
		line(s.Columns)
		for _, row := range s.Rows {
			line(row)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if v := r.Verified; v != nil {
		fmt.Fprintf(w, "\nrecord: ")
		if v.Clean() {
			fmt.Fprintf(w, "verifies (%d events in %d chain range(s) checked)\n", v.Events, len(v.Ranges))
		} else {
			fmt.Fprintf(w, "DOES NOT VERIFY (%d findings)\n", len(v.Findings))
			for _, f := range v.Findings {
				fmt.Fprintf(w, "  %s\n", f)
			}
		}
	}
	return nil
}

// RenderHTML writes r as one self-contained page: inline styles, no
// scripts, no fetches, so it can be attached to a ticket and opened
// anywhere. The timeline is drawn as marks on a time axis, one per event,
// coloured by effect, above the tables.
func RenderHTML(w io.Writer, r *Report) error {
	return page.Execute(w, htmlData{Report: r, Marks: marks(r)})
}

type htmlData struct {
	*Report
	Marks []mark
}

// mark is one event drawn on the timeline, at Left percent of its width.
type mark struct {
	Left         float64
	Class, Label string
}

func marks(r *Report) []mark {
	tl := r.Section("timeline")
	for _, name := range []string{"events", "evidence"} {
		if tl == nil {
			tl = r.Section(name)
		}
	}
	if tl == nil || len(tl.Rows) == 0 {
		return nil
	}
	first, last := tl.Rows[0][0], tl.Rows[len(tl.Rows)-1][0]
	t0, t1 := parseTime(first), parseTime(last)
	span := t1 - t0
	var out []mark
	for _, row := range tl.Rows {
		left := 50.0
		if span > 0 {
			left = float64(parseTime(row[0])-t0) / float64(span) * 100
		}
		class := row[1]
		if row[1] == "decision" {
			class = row[6]
		}
		out = append(out, mark{Left: left, Class: class, Label: row[0] + " " + row[1] + " " + row[3] + " " + row[6]})
	}
	return out
}

func parseTime(s string) int64 {
	var y, mo, d, h, mi int
	var sec float64
	if _, err := fmt.Sscanf(s, "%d-%d-%d %d:%d:%f", &y, &mo, &d, &h, &mi, &sec); err != nil {
		return 0
	}
	days := int64(y)*372 + int64(mo)*31 + int64(d) // monotonic, enough for placement
	return ((days*24+int64(h))*60+int64(mi))*60_000_000 + int64(sec*1e6)
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{.Title}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#eee} .axis{position:relative;height:40px;border-bottom:2px solid #888;margin:1em 0}
.m{position:absolute;bottom:0;width:6px;height:30px;margin-left:-3px;background:#888}
.m.allow{background:#2a2} .m.deny{background:#c22} .m.response{background:#58c} .m.alert{background:#e80;height:38px}
ul.tree,ul.tree ul{list-style:none;padding-left:1.2em} .bad{color:#c22;font-weight:bold} .ok{color:#2a2;font-weight:bold}
</style></head><body>
<h1 id="title">{{.Title}}</h1>
{{if .Marks}}<h2>timeline</h2><div class="axis" id="axis">{{range .Marks}}<div class="m {{.Class}}" style="left:{{printf "%.2f" .Left}}%" title="{{.Label}}"></div>{{end}}</div>{{end}}
{{if .Chains}}<h2>delegation</h2><div id="chains">{{template "nodes" .Chains}}</div>{{end}}
{{with .Verified}}<h2>record</h2><p id="verified">{{if .Clean}}<span class="ok">verifies</span> ({{.Events}} events in {{len .Ranges}} chain range(s) checked){{else}}<span class="bad">DOES NOT VERIFY</span><ul>{{range .Findings}}<li>{{.}}</li>{{end}}</ul>{{end}}</p>{{end}}
{{range .Sections}}<h2>{{.Name}} ({{len .Rows}})</h2>
{{if .Rows}}<table class="section" data-name="{{.Name}}"><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}{{end}}
</body></html>
{{define "nodes"}}<ul class="tree">{{range .}}<li>{{.Name}}{{if .Children}}{{template "nodes" .Children}}{{end}}</li>{{end}}</ul>{{end}}
`))
