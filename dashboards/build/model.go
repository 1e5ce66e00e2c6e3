// Package build generates Rampart's Grafana provisioning — datasources, the
// dashboards' JSON models and the alert rules — from the Go description in
// this package, so that `make dashboards` writes dashboards/provisioning and
// a test proves the committed files are its output. Every query lives here
// once; the tests in package dashboards run each one.
package build

import (
	"encoding/json"
	"fmt"
)

// Datasource uids the provisioned files name; dashboards and rules refer to
// them, never to a datasource's display name, so renaming one breaks nothing.
const (
	ClickHouseUID  = "rampart-clickhouse"
	PrometheusUID  = "rampart-prometheus"
	ClickHouseType = "grafana-clickhouse-datasource"
	PrometheusType = "prometheus"
	// SchemaVersion is the dashboard JSON model version written, the one
	// grafana-foundation-sdk v0.0.22 (Grafana 12) writes.
	SchemaVersion = 42
	// PluginVersion is the ClickHouse plugin release the queries were
	// written against (v4: host/port/protocol settings, editorType sql).
	PluginVersion = "4.0.0"
)

// Query formats of the ClickHouse plugin (sqlds' FormatQueryOption): a time
// series frame is built from a long table whose first column is the time.
const (
	FormatTimeSeries = 0
	FormatTable      = 1
)

// Panel is one panel of a dashboard: a ClickHouse SQL query or one or more
// PromQL expressions.
type Panel struct {
	Title       string
	Description string
	// Type is the panel plugin: timeseries, table, stat, barchart.
	Type string
	// SQL is the query as the ClickHouse plugin receives it (before
	// template variables and macros); Format is FormatTimeSeries or
	// FormatTable.
	SQL    string
	Format int
	// PromQL are the Prometheus expressions with their legends.
	PromQL []Prom
	// W and H size the panel on the 24-column grid.
	W, H int
	// Links are data links on every cell (tables): drill-downs to another
	// dashboard with this row's values as variables.
	Links []Link
	// Unit is the field unit (short, s, bytes, ...).
	Unit string
	// ShowsAlerts marks the panels where a Rampart alert appears.
	ShowsAlerts bool
}

// Prom is one PromQL target.
type Prom struct {
	Expr, Legend string
}

// Link is a drill-down data link.
type Link struct {
	Title, URL string
}

// Variable is a template variable filled by a ClickHouse query.
type Variable struct {
	Name, Label string
	SQL         string
	Multi       bool
	IncludeAll  bool
}

// Board is one dashboard.
type Board struct {
	UID, Title, Description string
	File                    string // file name under provisioning/dashboards/rampart
	Tags                    []string
	Variables               []Variable
	Panels                  []Panel
	// From is the default time range ("now-6h").
	From string
}

// Source reports whether p is a ClickHouse or a Prometheus panel.
func (p Panel) Source() string {
	if len(p.PromQL) > 0 {
		return PrometheusUID
	}
	return ClickHouseUID
}

// JSON renders b as Grafana's dashboard JSON model.
func (b Board) JSON() ([]byte, error) {
	type ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	chDS := ds{ClickHouseType, ClickHouseUID}
	promDS := ds{PrometheusType, PrometheusUID}
	var panels []map[string]any
	x, y, rowH := 0, 0, 0
	for i, p := range b.Panels {
		if x+p.W > 24 {
			x, y, rowH = 0, y+rowH, 0
		}
		var targets []map[string]any
		var d ds
		if p.Source() == PrometheusUID {
			d = promDS
			for j, q := range p.PromQL {
				targets = append(targets, map[string]any{
					"refId": string(rune('A' + j)), "datasource": d, "expr": q.Expr,
					"legendFormat": q.Legend, "range": p.Type != "stat" && p.Type != "table", "instant": p.Type == "stat" || p.Type == "table",
				})
			}
		} else {
			d = chDS
			targets = append(targets, chTarget("A", p.SQL, p.Format))
		}
		defaults := map[string]any{}
		if p.Unit != "" {
			defaults["unit"] = p.Unit
		}
		if len(p.Links) > 0 {
			var links []map[string]any
			for _, l := range p.Links {
				links = append(links, map[string]any{"title": l.Title, "url": l.URL})
			}
			defaults["links"] = links
		}
		panel := map[string]any{
			"id": i + 1, "type": p.Type, "title": p.Title, "description": p.Description,
			"gridPos":     map[string]int{"x": x, "y": y, "w": p.W, "h": p.H},
			"datasource":  d,
			"targets":     targets,
			"fieldConfig": map[string]any{"defaults": defaults, "overrides": []any{}},
		}
		panels = append(panels, panel)
		x += p.W
		rowH = max(rowH, p.H)
	}
	var vars []map[string]any
	for _, v := range b.Variables {
		vv := map[string]any{
			"name": v.Name, "label": v.Label, "type": "query", "datasource": chDS,
			"query":   chTarget("", v.SQL, FormatTable),
			"refresh": 2, // on time range change
			"multi":   v.Multi, "includeAll": v.IncludeAll, "sort": 1,
		}
		if v.IncludeAll {
			vv["current"] = map[string]any{"text": []string{"All"}, "value": []string{"$__all"}}
		}
		vars = append(vars, vv)
	}
	from := b.From
	if from == "" {
		from = "now-6h"
	}
	m := map[string]any{
		"uid": b.UID, "title": b.Title, "description": b.Description, "tags": b.Tags,
		"schemaVersion": SchemaVersion, "editable": false, "timezone": "utc",
		"time":       map[string]string{"from": from, "to": "now"},
		"refresh":    "1m",
		"templating": map[string]any{"list": vars},
		"panels":     panels,
		"links": []map[string]any{{
			"title": "Rampart", "type": "dashboards", "tags": []string{"rampart"}, "icon": "external link",
			"tooltip": "Rampart's dashboards, with this one's time range and variables", "url": "", "targetBlank": false,
			"asDropdown": true, "includeVars": true, "keepTime": true,
		}},
		"annotations": map[string]any{"list": []any{}},
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("build: %s: %w", b.UID, err)
	}
	return append(out, '\n'), nil
}

// chTarget is a ClickHouse plugin query in its SQL editor's form.
func chTarget(refID, sql string, format int) map[string]any {
	t := map[string]any{
		"datasource": map[string]string{"type": ClickHouseType, "uid": ClickHouseUID},
		"editorType": "sql", "rawSql": sql, "format": format, "pluginVersion": PluginVersion,
		"queryType": map[int]string{FormatTimeSeries: "timeseries", FormatTable: "table"}[format],
	}
	if refID != "" {
		t["refId"] = refID
	}
	return t
}
