package expand

import (
	"strings"
	"testing"
	"time"
)

var (
	from = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	to   = from.Add(time.Hour)
)

func req(vars map[string]Var) Request {
	return Request{From: from, To: to, Interval: 30 * time.Second, Vars: vars}
}

// The expected strings are written out by hand from the plugin's and
// Grafana's documented behaviour, not computed by the code under test.
func TestQuery(t *testing.T) {
	tenants := Var{Values: []string{"acme", "o'brien"}, Options: []string{"acme", "globex", "o'brien"}, Multi: true}
	all := Var{Values: []string{AllValue}, Options: []string{"acme", "globex"}, Multi: true}
	one := Var{Values: []string{"s-1"}, Options: []string{"s-1", "s-2"}}
	cases := []struct {
		name, sql string
		vars      map[string]Var
		want      string
		interval  time.Duration
	}{
		{name: "time filter", sql: "WHERE $__timeFilter(event_time)",
			want: "WHERE event_time >= toDateTime(1796119200) AND event_time <= toDateTime(1796122800)"},
		{name: "time filter ms", sql: "WHERE $__timeFilter_ms(t)",
			want: "WHERE t >= fromUnixTimestamp64Milli(1796119200000) AND t <= fromUnixTimestamp64Milli(1796122800000)"},
		{name: "time interval", sql: "SELECT $__timeInterval(event_time) AS time",
			want: "SELECT toStartOfInterval(toDateTime(event_time), INTERVAL 30 second) AS time"},
		{name: "time interval at least a second", sql: "SELECT $__timeInterval(event_time)", interval: 200 * time.Millisecond,
			want: "SELECT toStartOfInterval(toDateTime(event_time), INTERVAL 1 second)"},
		{name: "interval seconds", sql: "INTERVAL $__interval_s second", want: "INTERVAL 30 second"},
		{name: "from and to with parentheses", sql: "x BETWEEN $__fromTime() AND $__toTime()",
			want: "x BETWEEN toDateTime(1796119200) AND toDateTime(1796122800)"},
		{name: "from closed by a parenthesis", sql: "(x >= $__fromTime)", want: "(x >= toDateTime(1796119200))"},
		// sqlutil takes the first parenthesised group after a macro as its
		// arguments even when it belongs to something else.
		{name: "argument-less macro swallows the next group", sql: "x >= $__fromTime AND y IN (1, 2) LIMIT 3",
			want: "x >= toDateTime(1796119200) LIMIT 3"},
		{name: "multi-value singlequote escapes quotes", sql: "tenant IN (${tenant:singlequote})", vars: map[string]Var{"tenant": tenants},
			want: `tenant IN ('acme','o\'brien')`},
		{name: "plugin format quotes a list without escaping", sql: "tenant IN ($tenant)", vars: map[string]Var{"tenant": tenants},
			want: "tenant IN ('acme','o'brien')"},
		{name: "All without a custom value is every option", sql: "tenant IN (${tenant:singlequote})", vars: map[string]Var{"tenant": all},
			want: "tenant IN ('acme','globex')"},
		{name: "single value inserted as it is", sql: "session_id = '$session'", vars: map[string]Var{"session": one},
			want: "session_id = 's-1'"},
		{name: "bracket syntax", sql: "s = '[[session]]'", vars: map[string]Var{"session": one}, want: "s = 's-1'"},
		{name: "conditionalAll with All", sql: "WHERE $__conditionalAll(actor IN (${agent:singlequote}), $agent) AND 1",
			vars: map[string]Var{"agent": all}, want: "WHERE 1=1 AND 1"},
		{name: "conditionalAll with a value", sql: "WHERE $__conditionalAll(actor IN (${agent:singlequote}), ${agent}) AND 1",
			vars: map[string]Var{"agent": tenants}, want: `WHERE actor IN ('acme','o\'brien') AND 1`},
		{name: "two conditionalAlls", sql: "$__conditionalAll(a IN ($x), $x) AND $__conditionalAll(b IN ($y), $y)",
			vars: map[string]Var{"x": all, "y": one}, want: "1=1 AND b IN (s-1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := req(c.vars)
			if c.interval != 0 {
				r.Interval = c.interval
			}
			got, err := Query(c.sql, r)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestQueryRefuses(t *testing.T) {
	cases := []struct{ name, sql, err string }{
		{"unknown variable", "tenant = '$tenant'", "unknown variable $tenant"},
		{"Grafana global", "INTERVAL $__interval", "Grafana global"},
		{"time filter without column", "WHERE $__timeFilter()", ""},
		{"time filter with two columns", "WHERE $__timeFilter(a, b)", "expected 1 argument, received 2"},
		{"conditionalAll with one argument", "$__conditionalAll(a IN (1))", "two arguments"},
		{"unsupported format", "x IN (${x:regex})", "not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Query(c.sql, req(map[string]Var{"x": {Values: []string{"1"}}}))
			if c.err == "" {
				// The plugin accepts it and sends broken SQL: one empty argument.
				if err != nil || !strings.HasPrefix(got, "WHERE  >= toDateTime(") {
					t.Fatalf("got %q, %v; want the empty column the plugin writes", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %q, %v; want error containing %q", got, err, c.err)
			}
		})
	}
}
