package build

import (
	"encoding/json"
	"fmt"
)

// Rule is one Grafana-managed alert rule: a query (A), reduced to one
// number per series (B, last), compared with a threshold (C, the
// condition).
type Rule struct {
	UID, Title string
	// SQL or PromQL is the query; exactly one is set.
	SQL    string
	PromQL string
	// Window is how far back, in seconds, the query looks (relativeTimeRange.from).
	Window int
	// Above is the threshold: the rule fires when B > Above.
	Above float64
	// For is how long the condition must hold ("0s" fires at once).
	For      string
	Severity string
	Summary  string
	// Dashboard and Investigate are the annotations a notification
	// carries: where to look, and the command to question the record.
	Dashboard   string
	Investigate string
	// NoData is what no rows mean: OK for alert queries (nothing happened),
	// NoData where silence itself is suspect.
	NoData string
}

// Folder and group of the provisioned rules.
const (
	RuleFolder = "Rampart"
	RuleGroup  = "rampart"
)

// Rules returns the alert rules.
func Rules() []Rule {
	scope := "/d/" + ScopeUID + "?var-tenant={{ $labels.tenant }}&var-rule={{ $labels.rule_id }}"
	return []Rule{
		{UID: "rampart-alert-high", Title: "Rampart: new high or critical alert", Window: 300, For: "0s", Severity: "{{ $labels.severity }}",
			Summary: "{{ $labels.rule_id }} raised {{ $values.B }} {{ $labels.severity }} alert(s) in tenant {{ $labels.tenant }}",
			SQL: "SELECT tenant, rule_id, severity, argMax(alert_id, event_time_us) AS latest_alert, count() AS alerts\nFROM alerts\n" +
				"WHERE $__timeFilter(event_time) AND severity IN ('high', 'critical')\nGROUP BY tenant, rule_id, severity\nORDER BY tenant, rule_id, severity",
			Dashboard:   scope,
			Investigate: "rampart investigate alert {{ $labels.latest_alert }}", NoData: "OK"},
		{UID: "rampart-alert-bypass", Title: "Rampart: boundary bypass", Window: 300, For: "0s", Severity: "critical",
			Summary: "a boundary-bypass detection ({{ $labels.rule_id }}) fired in tenant {{ $labels.tenant }}",
			SQL: "SELECT tenant, rule_id, argMax(alert_id, event_time_us) AS latest_alert, count() AS alerts\nFROM alerts\n" +
				"WHERE $__timeFilter(event_time) AND (has(tags, 'boundary-bypass') OR rule_id LIKE '%bypass%')\nGROUP BY tenant, rule_id\nORDER BY tenant, rule_id",
			Dashboard:   scope,
			Investigate: "rampart investigate alert {{ $labels.latest_alert }}", NoData: "OK"},
		{UID: "rampart-sequence-gaps", Title: "Rampart: sequence gaps in the record", Window: 900, For: "5m", Severity: "high",
			Summary: "instance {{ $labels.instance }} has {{ $values.B }} sequence number(s) missing that no checkpoint explains",
			SQL: "SELECT instance, epoch, max(seq) - min(seq) + 1 - uniqExact(seq) - sum(length(checkpoint_unrecorded)) AS unexplained\n" +
				"FROM events\nWHERE $__timeFilter(event_time) AND instance != ''\nGROUP BY instance, epoch\nORDER BY instance, epoch",
			Dashboard:   "/d/" + IntegrityUID,
			Investigate: "rampart verify -nats NATS_URL -keys KEYS -instance {{ $labels.instance }}", NoData: "OK"},
		{UID: "rampart-dlq-growth", Title: "Rampart: dead letters", Window: 600, For: "0s", Severity: "high",
			Summary:     "collector {{ $labels.instance }} dead-lettered {{ $values.B }} event(s)",
			PromQL:      "sum by (instance) (increase(rampart_collector_events_total{outcome=\"dead_lettered\"}[10m]))",
			Dashboard:   "/d/" + IntegrityUID,
			Investigate: "nats stream view RAMPART_DLQ (each message carries Rampart-DLQ-Reason)", NoData: "OK"},
		{UID: "rampart-collector-lag", Title: "Rampart: collector behind", Window: 600, Above: 10000, For: "5m", Severity: "warning",
			Summary:     "collector {{ $labels.instance }} is {{ $values.B }} messages behind the stream",
			PromQL:      "max by (instance) (rampart_collector_lag)",
			Dashboard:   "/d/" + HealthUID,
			Investigate: "rampart verify -nats NATS_URL (counts the events still on their way)", NoData: "NoData"},
		{UID: "rampart-audit-unavailable", Title: "Rampart: enforcer refusing, audit unavailable", Window: 300, For: "1m", Severity: "critical",
			Summary:     "enforcer {{ $labels.instance }} refused {{ $values.B }} request(s): their decisions could not be recorded",
			PromQL:      "sum by (instance) (increase(rampart_enforcer_requests_total{code=\"audit_unavailable\"}[5m]))",
			Dashboard:   "/d/" + HealthUID,
			Investigate: "rampart verify -nats NATS_URL -keys KEYS (unrecorded sequence numbers are listed)", NoData: "OK"},
	}
}

// rulesFile renders the rules in Grafana's alerting file-provisioning form.
// JSON is YAML, and keeps the file byte-stable for the golden check.
func rulesFile() ([]byte, error) {
	var rules []map[string]any
	for _, r := range Rules() {
		var a map[string]any
		if r.SQL != "" {
			model := chTarget("A", r.SQL, FormatTable)
			model["intervalMs"], model["maxDataPoints"] = 60000, 43200
			a = map[string]any{"refId": "A", "datasourceUid": ClickHouseUID, "model": model,
				"relativeTimeRange": map[string]int{"from": r.Window, "to": 0}}
		} else {
			a = map[string]any{"refId": "A", "datasourceUid": PrometheusUID,
				"relativeTimeRange": map[string]int{"from": r.Window, "to": 0},
				"model": map[string]any{"refId": "A", "expr": r.PromQL, "instant": true, "range": false,
					"datasource": map[string]string{"type": PrometheusType, "uid": PrometheusUID}, "intervalMs": 60000, "maxDataPoints": 43200}}
		}
		expr := map[string]string{"type": "__expr__", "uid": "__expr__"}
		b := map[string]any{"refId": "B", "datasourceUid": "__expr__", "relativeTimeRange": map[string]int{"from": 0, "to": 0},
			"model": map[string]any{"refId": "B", "type": "reduce", "expression": "A", "reducer": "last", "datasource": expr}}
		c := map[string]any{"refId": "C", "datasourceUid": "__expr__", "relativeTimeRange": map[string]int{"from": 0, "to": 0},
			"model": map[string]any{"refId": "C", "type": "threshold", "expression": "B", "datasource": expr,
				"conditions": []any{map[string]any{"evaluator": map[string]any{"type": "gt", "params": []float64{r.Above}}}}}}
		rules = append(rules, map[string]any{
			"uid": r.UID, "title": r.Title, "condition": "C", "data": []any{a, b, c},
			"for": r.For, "noDataState": r.NoData, "execErrState": "Error", "isPaused": false,
			"labels": map[string]string{"source": "rampart", "severity": r.Severity},
			"annotations": map[string]string{
				"summary": r.Summary, "dashboard": r.Dashboard, "investigate": r.Investigate,
			},
		})
	}
	f := map[string]any{
		"apiVersion": 1,
		"groups": []any{map[string]any{
			"orgId": 1, "name": RuleGroup, "folder": RuleFolder, "interval": "1m", "rules": rules,
		}},
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("build: rules: %w", err)
	}
	return append(out, '\n'), nil
}
