// Package expand turns a ClickHouse panel or alert query into the SQL the
// ClickHouse server receives from Grafana, in the steps and with the rules
// Grafana and the grafana-clickhouse-datasource plugin (v4) apply:
//
//  1. the plugin's $__conditionalAll(condition, $var) (frontend,
//     CHDatasource.applyConditionalAll);
//  2. Grafana's template variables (templateSrv.replace with the plugin's
//     own format function, or the format a ${var:format} names);
//  3. the plugin's backend macros ($__timeFilter, $__timeInterval,
//     $__fromTime, $__toTime, ...; pkg/macros over sqlutil.Interpolate).
//
// Dashboards are tested with it against real ClickHouse, since Grafana
// cannot run here: a query the plugin would mangle fails here too.
package expand

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AllValue is Grafana's value of a variable set to All.
const AllValue = "$__all"

// Var is a template variable's current state.
type Var struct {
	// Values are the selected values (one for a single-value variable), or
	// AllValue alone for All.
	Values []string
	// Options are every value the variable offers: what All stands for
	// when the variable has no custom all value.
	Options []string
	// Multi marks a multi-value variable: its value is a list even with
	// one selection, which the plugin's format quotes.
	Multi bool
}

// Request is what a query is expanded for.
type Request struct {
	From, To time.Time
	// Interval is the panel's $__interval (Grafana derives it from the time
	// range and the panel's width; alert queries from intervalMs).
	Interval time.Duration
	Vars     map[string]Var
}

// Query expands sql for r.
func Query(sql string, r Request) (string, error) {
	sql, err := conditionalAll(sql, r.Vars)
	if err != nil {
		return "", err
	}
	sql, err = templateVars(sql, r.Vars)
	if err != nil {
		return "", err
	}
	return macros(sql, r)
}

// conditionalAll mirrors CHDatasource.applyConditionalAll: from the last
// occurrence backwards, $__conditionalAll(phrase, $var) becomes 1=1 when
// the variable is All (or empty) and phrase otherwise. Arguments are split
// at commas outside parentheses; a macro without exactly two arguments
// stops the rewriting (the plugin returns the query as it is then).
func conditionalAll(sql string, vars map[string]Var) (string, error) {
	const macro = "$__conditionalAll("
	varRef := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	for i := strings.LastIndex(sql, macro); i >= 0; i = strings.LastIndex(sql, macro) {
		args, ok := macroArgs(sql[i+len(macro)-1:])
		if !ok || len(args) != 2 {
			return sql, fmt.Errorf("expand: $__conditionalAll needs two arguments at offset %d", i)
		}
		phrase := args[0]
		if m := varRef.FindStringSubmatch(strings.TrimSpace(args[1])); m != nil {
			name := m[1] + m[2]
			v, known := vars[name]
			if !known {
				return "", fmt.Errorf("expand: $__conditionalAll names unknown variable %q", name)
			}
			// The plugin reads current.value.toString(): a list joins with commas.
			if cur := strings.Join(v.Values, ","); cur == "" || cur == AllValue {
				phrase = "1=1"
			}
		}
		sql = strings.Replace(sql, macro+args[0]+","+args[1]+")", phrase, 1)
	}
	return sql, nil
}

// macroArgs reads the arguments of "(a, f(b, c))" as the plugin's
// getMacroArgs does: split on commas at depth one, untrimmed.
func macroArgs(s string) ([]string, bool) {
	var args []string
	depth, last := 0, 1
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 1 {
				args = append(args, s[last:i])
				last = i + 1
			}
		}
		if depth == 0 {
			args = append(args, s[last:i])
			return args, true
		}
	}
	return nil, false
}

// variable is Grafana's variable syntax: $name, [[name:format]] and
// ${name.fieldPath:format}.
var variable = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// templateVars mirrors templateSrv.replace. Names Grafana does not know
// ($__timeFilter and the plugin's other macros) are left for the backend.
// Without an explicit format the plugin's format applies: a list becomes
// 'a','b' (no escaping), a single value is inserted as it is.
func templateVars(sql string, vars map[string]Var) (string, error) {
	var err error
	out := variable.ReplaceAllStringFunc(sql, func(m string) string {
		g := variable.FindStringSubmatch(m)
		name := g[1] + g[2] + g[4]
		format := g[3] + g[6]
		if g[5] != "" {
			err = fmt.Errorf("expand: field path in %s is not supported", m)
			return m
		}
		v, known := vars[name]
		if !known {
			if strings.HasPrefix(name, "__") {
				// Grafana's global variables ($__interval, $__from, ...) would
				// be replaced by Grafana; Rampart's queries use the plugin's
				// macros instead, so a global here is a mistake.
				if isGrafanaGlobal(name) {
					err = fmt.Errorf("expand: Grafana global %s in a query: use the plugin's macros", m)
				}
				return m
			}
			err = fmt.Errorf("expand: unknown variable %s", m)
			return m
		}
		values := v.Values
		if len(values) == 1 && values[0] == AllValue {
			values = v.Options
		}
		s, ferr := formatValue(values, v.Multi, format)
		if ferr != nil {
			err = ferr
			return m
		}
		return s
	})
	return out, err
}

func isGrafanaGlobal(name string) bool {
	switch name {
	case "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__rate_interval",
		"__from", "__to", "__dashboard", "__user", "__org", "__timezone", "__name":
		return true
	}
	return false
}

// formatValue applies a variable format to values.
func formatValue(values []string, multi bool, format string) (string, error) {
	switch format {
	case "":
		// The plugin's format(): arrays become 'a','b' — values are not escaped.
		if multi || len(values) != 1 {
			return "'" + strings.Join(values, "','") + "'", nil
		}
		return values[0], nil
	case "singlequote":
		// Grafana's singlequote: each value in single quotes, ' escaped as \'.
		q := make([]string, len(values))
		for i, v := range values {
			q[i] = "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
		}
		return strings.Join(q, ","), nil
	case "raw":
		return strings.Join(values, ","), nil
	}
	return "", fmt.Errorf("expand: variable format %q is not supported", format)
}

// macroFunc is one backend macro of the plugin.
type macroFunc func(r Request, args []string) (string, error)

// pluginMacros are pkg/macros.Macros of grafana-clickhouse-datasource v4.
var pluginMacros = map[string]macroFunc{
	"fromTime":    func(r Request, _ []string) (string, error) { return dateTime(r.From), nil },
	"toTime":      func(r Request, _ []string) (string, error) { return dateTime(r.To), nil },
	"fromTime_ms": func(r Request, _ []string) (string, error) { return dateTime64(r.From), nil },
	"toTime_ms":   func(r Request, _ []string) (string, error) { return dateTime64(r.To), nil },
	"timeFilter": oneArg(func(r Request, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, dateTime(r.From), c, dateTime(r.To))
	}),
	"timeFilter_ms": oneArg(func(r Request, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, dateTime64(r.From), c, dateTime64(r.To))
	}),
	"dateFilter": oneArg(func(r Request, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, date(r.From), c, date(r.To))
	}),
	"timeInterval": oneArg(func(r Request, c string) string {
		// At least one second, whatever Grafana asked for.
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", c, int(math.Max(r.Interval.Seconds(), 1)))
	}),
	"timeInterval_ms": oneArg(func(r Request, c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", c, int(math.Max(float64(r.Interval.Milliseconds()), 1)))
	}),
	"interval_s": func(r Request, _ []string) (string, error) {
		return strconv.Itoa(int(math.Max(r.Interval.Seconds(), 1))), nil
	},
}

func dateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
func dateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}
func date(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.Format("2006-01-02")) }

func oneArg(f func(Request, string) string) macroFunc {
	return func(r Request, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("expand: unexpected number of arguments: expected 1 argument, received %d", len(args))
		}
		return f(r, args[0]), nil
	}
}

// macros mirrors sqlutil.Interpolate with the plugin's macros: each
// $__name (a word boundary after it) takes as its arguments the first
// balanced parenthesised group after it — even one further on in the
// query when the macro itself has none, which is why Rampart writes
// argument-less macros as $__fromTime() — split at every comma and
// trimmed; every occurrence of the same text is replaced at once.
func macros(sql string, r Request) (string, error) {
	// The plugin walks its macro map in Go's random order; the
	// word-boundary regexp keeps $__timeFilter from matching
	// $__timeFilter_ms, so the order does not change the result.
	for name, f := range pluginMacros {
		re := regexp.MustCompile(`\$__` + name + `\b`)
		for {
			loc := re.FindStringIndex(sql)
			if loc == nil {
				break
			}
			text, args := macroCall(sql[loc[0]:], loc[1]-loc[0])
			res, err := f(r, args)
			if err != nil {
				return sql, fmt.Errorf("%w in %q", err, text)
			}
			sql = strings.ReplaceAll(sql, text, res)
		}
	}
	return sql, nil
}

// macroCall is sqlutil's getMacroMatches for one match at the start of s,
// nameLen bytes long: the text replaced and its arguments.
func macroCall(s string, nameLen int) (string, []string) {
	depth, argStart, end := 0, 0, 0
	for i, r := range s {
		if depth == 0 && end > 0 {
			break
		}
		switch r {
		case '(':
			depth++
			if argStart == 0 {
				argStart = i + 1
			}
		case ')':
			if depth == 0 {
				// A closing parenthesis before any opening one: the macro has
				// no parentheses, and (as strings.Split("") gives) one empty argument.
				return s[:nameLen], []string{""}
			}
			depth--
			end = i + 1
		}
	}
	if end == 0 {
		return s[:nameLen], []string{""}
	}
	raw := s[argStart : end-1]
	args := strings.Split(raw, ",")
	for i := range args {
		args[i] = strings.TrimSpace(args[i])
	}
	return s[:end], args
}
