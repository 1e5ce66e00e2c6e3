package build

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-io/rampart/enforcer/identity"
	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// Dashboard uids: stable, so links and bookmarks survive regeneration.
const (
	ScopeUID     = "rampart-scope-violations"
	BoundaryUID  = "rampart-boundary"
	SessionUID   = "rampart-session-agent"
	IntegrityUID = "rampart-record-integrity"
	HealthUID    = "rampart-health"
)

// Filters shared by the panels. Template values are always interpolated
// with Grafana's singlequote format: the plugin's own format puts values
// between quotes without escaping them, so a tenant named o'brien would
// break (or rewrite) the query.
const (
	tenantIn = "tenant IN (${tenant:singlequote})"
	// Boundary panels keep unidentified callers (empty tenant), who belong
	// to no tenant a user could pick.
	tenantOrNone = "(" + tenantIn + " OR tenant = '')"
	ruleIn       = "rule_id IN (${rule:singlequote})"
	timeEvents   = "$__timeFilter(event_time)"
	timeBucket   = "$__timeInterval(event_time)"
	urlTime      = "${__url_time_range}"
)

// Links between dashboards: the row's values become the target's variables.
func dashURL(uid string, vars ...string) string {
	q := slices.Clone(vars)
	q = append(q, urlTime)
	return "/d/" + uid + "?" + strings.Join(q, "&")
}

// refusalStage classifies a refusal made before policy by its stable code.
func refusalStage() string {
	var ident []string
	for _, c := range identity.Codes() {
		ident = append(ident, "'"+string(c)+"'")
	}
	// The enforcer's own identity checks beyond the token (certificate and
	// SPIFFE agreement).
	ident = append(ident, "'client_cert_invalid'", "'spiffe_mismatch'")
	schema := []string{
		"'" + string(toolschema.ArgsInvalid) + "'", "'" + string(toolschema.ToolUnknown) + "'",
		"'" + string(toolschema.SchemaChanged) + "'", "'" + string(toolschema.SchemaInvalid) + "'",
	}
	return fmt.Sprintf("multiIf(code IN (%s), 'identity', code IN (%s), 'schema', 'request')",
		strings.Join(ident, ", "), strings.Join(schema, ", "))
}

func tenantVar() Variable {
	return Variable{Name: "tenant", Label: "Tenant", Multi: true, IncludeAll: true,
		SQL: "SELECT DISTINCT tenant FROM events WHERE " + timeEvents + " AND tenant != '' ORDER BY tenant"}
}

// Boards returns the five dashboards.
func Boards() []Board {
	return []Board{scopeViolations(), boundary(), sessionAgent(), integrity(), health()}
}

func scopeViolations() Board {
	alertsWhere := "WHERE " + timeEvents + " AND " + tenantIn + " AND " + ruleIn
	return Board{
		UID: ScopeUID, Title: "Rampart / Scope violations", File: "scope-violations.json",
		Description: "Alerts raised by the correlator's detection rules: when, which rule, who, and the evidence.",
		Tags:        []string{"rampart", "alerts"},
		Variables: []Variable{
			tenantVar(),
			{Name: "rule", Label: "Rule", Multi: true, IncludeAll: true,
				SQL: "SELECT DISTINCT rule_id FROM alerts WHERE " + timeEvents + " AND " + tenantIn + " ORDER BY rule_id"},
			{Name: "alert", Label: "Alert",
				SQL: "SELECT alert_id FROM alerts " + alertsWhere + " ORDER BY event_time DESC LIMIT 200"},
		},
		Panels: []Panel{
			{Title: "Alerts over time by rule and severity", Type: "timeseries", W: 16, H: 8, Format: FormatTimeSeries, ShowsAlerts: true,
				Description: "Alerts per interval, one series per rule and severity.",
				SQL: "SELECT " + timeBucket + " AS time, concat(rule_id, ' (', severity, ')') AS rule, count() AS alerts\n" +
					"FROM alerts\n" + alertsWhere + "\nGROUP BY time, rule\nORDER BY time, rule"},
			{Title: "Open critical alerts", Type: "stat", W: 8, H: 8, Format: FormatTable, ShowsAlerts: true,
				Description: "Critical alerts raised in the time range. Rampart records no resolution: an alert stays open until the SOC closes it in its own tool.",
				SQL:         "SELECT count() AS critical\nFROM alerts\n" + alertsWhere + " AND severity = 'critical'"},
			{Title: "Top agents by alerts", Type: "table", W: 12, H: 8, Format: FormatTable, ShowsAlerts: true,
				Description: "The acting agent of each alert's group (rules grouping by actor).",
				SQL: "SELECT tenant, group_values[indexOf(group_fields, 'actor')] AS agent, count() AS alerts, uniqExact(rule_id) AS rules, max(last_at) AS last\n" +
					"FROM alerts\n" + alertsWhere + "\nGROUP BY tenant, agent\nORDER BY alerts DESC, tenant, agent\nLIMIT 10",
				Links: []Link{{"Agent activity", dashURL(SessionUID, "var-tenant=${__data.fields.tenant}", "var-agent=${__data.fields.agent}")}}},
			{Title: "Top principals by alerts", Type: "table", W: 12, H: 8, Format: FormatTable, ShowsAlerts: true,
				Description: "The principal (the token's subject) of each alert's group (rules grouping by subject).",
				SQL: "SELECT tenant, group_values[indexOf(group_fields, 'subject')] AS principal, count() AS alerts, uniqExact(rule_id) AS rules, max(last_at) AS last\n" +
					"FROM alerts\n" + alertsWhere + "\nGROUP BY tenant, principal\nORDER BY alerts DESC, tenant, principal\nLIMIT 10"},
			{Title: "Alerts", Type: "table", W: 24, H: 9, Format: FormatTable, ShowsAlerts: true,
				Description: "Every alert in the range; pick one to see its evidence below, or investigate it from the command line.",
				SQL: "SELECT event_time, tenant, rule_id, severity, title, matched, first_at, last_at, alert_id,\n" +
					"  concat('rampart investigate alert ', alert_id) AS investigate\n" +
					"FROM alerts\n" + alertsWhere + "\nORDER BY event_time DESC, alert_id\nLIMIT 500",
				Links: []Link{{"Show this alert's evidence", dashURL(ScopeUID, "var-tenant=${__data.fields.tenant}", "var-rule=${__data.fields.rule_id}", "var-alert=${__data.fields.alert_id}")}}},
			{Title: "Evidence of the selected alert", Type: "table", W: 24, H: 9, Format: FormatTable, ShowsAlerts: true,
				Description: "The stored events the selected alert names as its evidence, in order.",
				SQL: "SELECT event_time, kind, subject AS principal, actor, session_id, tool, effect, rule_id, code, reason, request_id, event_id\n" +
					"FROM events\nWHERE " + tenantIn + "\n  AND event_id IN (SELECT arrayJoin(evidence) FROM alerts WHERE alert_id = ${alert:singlequote})\n" +
					"ORDER BY event_time_us, seq",
				Links: []Link{{"Session timeline", dashURL(SessionUID, "var-tenant=${__data.fields.tenant}", "var-session=${__data.fields.session_id}")}}},
		},
	}
}

func boundary() Board {
	decisions := "WHERE " + timeEvents + " AND kind = 'decision' AND " + tenantOrNone
	return Board{
		UID: BoundaryUID, Title: "Rampart / Boundary overview", File: "boundary.json",
		Description: "Every decision the enforcers recorded: what was allowed and denied, by whom, and what was refused before policy.",
		Tags:        []string{"rampart", "decisions"},
		Variables:   []Variable{tenantVar()},
		Panels: []Panel{
			{Title: "Decisions over time by effect and tenant", Type: "timeseries", W: 24, H: 8, Format: FormatTimeSeries,
				SQL: "SELECT " + timeBucket + " AS time, concat(if(tenant = '', '(unidentified)', tenant), ' ', effect) AS decision, count() AS decisions\n" +
					"FROM events\n" + decisions + "\nGROUP BY time, decision\nORDER BY time, decision"},
			{Title: "Denials by rule and code", Type: "table", W: 12, H: 8, Format: FormatTable,
				SQL: "SELECT if(tenant = '', '(unidentified)', tenant) AS caller_tenant, rule_id, code, count() AS denials\n" +
					"FROM events\n" + decisions + " AND effect = 'deny'\nGROUP BY caller_tenant, rule_id, code\nORDER BY denials DESC, caller_tenant, rule_id, code\nLIMIT 50"},
			{Title: "Refusals before policy (identity, schema, request)", Type: "table", W: 12, H: 8, Format: FormatTable,
				Description: "Requests refused before any rule decided (no rule id, a stable code): the caller was not identified, the arguments broke the tool's schema, or the request itself was refused.",
				SQL: "SELECT " + refusalStage() + " AS stage, code, count() AS refusals\n" +
					"FROM events\n" + decisions + " AND rule_id = '' AND code != ''\nGROUP BY stage, code\nORDER BY refusals DESC, stage, code"},
			{Title: "Top tools", Type: "table", W: 8, H: 8, Format: FormatTable,
				SQL: "SELECT tool, countIf(effect = 'allow') AS allowed, countIf(effect = 'deny') AS denied\n" +
					"FROM events\n" + decisions + " AND tool != ''\nGROUP BY tool\nORDER BY allowed + denied DESC, tool\nLIMIT 15"},
			{Title: "Top destinations", Type: "table", W: 8, H: 8, Format: FormatTable,
				Description: "Where calls go (the enforcer's destination map; the upstream host when unmapped).",
				SQL: "SELECT host, if(destination = '', '(unmapped)', destination) AS destination, countIf(effect = 'allow') AS allowed, countIf(effect = 'deny') AS denied\n" +
					"FROM events\n" + decisions + " AND host != ''\nGROUP BY host, destination\nORDER BY allowed + denied DESC, host, destination\nLIMIT 15"},
			{Title: "Shadow-rule hits", Type: "table", W: 8, H: 8, Format: FormatTable,
				Description: "Audit-only rules that applied: what they would have decided, without deciding.",
				SQL: "SELECT shadow_rule, countIf(effect = 'allow') AS while_allowed, countIf(effect = 'deny') AS while_denied\n" +
					"FROM events\nARRAY JOIN shadow_rules AS shadow_rule\n" + decisions + "\nGROUP BY shadow_rule\nORDER BY while_allowed + while_denied DESC, shadow_rule"},
		},
	}
}

func sessionAgent() Board {
	session := "session_id = ${session:singlequote}"
	agents := "$__conditionalAll(actor IN (${agent:singlequote}), $agent)"
	return Board{
		UID: SessionUID, Title: "Rampart / Session and agent", File: "session-agent.json",
		Description: "One session reconstructed: its timeline, its delegation chains, its alerts; one agent's activity across sessions and principals.",
		Tags:        []string{"rampart", "forensics"},
		Variables: []Variable{
			tenantVar(),
			{Name: "session", Label: "Session",
				SQL: "SELECT session_id FROM events WHERE " + timeEvents + " AND " + tenantIn + " AND session_id != '' GROUP BY session_id ORDER BY max(event_time) DESC LIMIT 500"},
			{Name: "agent", Label: "Agent", Multi: true, IncludeAll: true,
				SQL: "SELECT DISTINCT actor FROM events WHERE " + timeEvents + " AND " + tenantIn + " AND actor != '' ORDER BY actor"},
		},
		Panels: []Panel{
			{Title: "Session timeline", Type: "table", W: 24, H: 10, Format: FormatTable,
				Description: "Every event of the session in the order the enforcer recorded it.",
				SQL: "SELECT event_time, instance, seq, kind, subject AS principal, arrayStringConcat(chain_subjects, ' > ') AS chain, rpc_method, tool, effect, rule_id, code, status, request_id\n" +
					"FROM events\nWHERE " + timeEvents + " AND " + tenantIn + " AND " + session + "\nORDER BY event_time_us, instance, seq"},
			{Title: "Delegation chains in the session", Type: "table", W: 12, H: 8, Format: FormatTable,
				Description: "Who acted for whom: the principal, then each agent of the RFC 8693 act chain, earliest first.",
				SQL: "SELECT subject AS principal, arrayStringConcat(chain_subjects, ' > ') AS chain, length(chain_subjects) AS depth, count() AS decisions, countIf(effect = 'deny') AS denied\n" +
					"FROM events\nWHERE " + timeEvents + " AND kind = 'decision' AND " + tenantIn + " AND " + session + "\nGROUP BY principal, chain, depth\nORDER BY depth, chain, principal"},
			{Title: "Alerts of the session", Type: "table", W: 12, H: 8, Format: FormatTable, ShowsAlerts: true,
				Description: "Alerts whose evidence includes an event of the session.",
				SQL: "SELECT event_time, rule_id, severity, title, matched, alert_id\nFROM alerts\nWHERE " + tenantIn + "\n" +
					"  AND alert_id IN (SELECT alert_id FROM alerts ARRAY JOIN evidence AS evidence_id\n" +
					"    WHERE evidence_id IN (SELECT event_id FROM events WHERE " + tenantIn + " AND " + session + "))\nORDER BY event_time, alert_id",
				Links: []Link{{"Alert evidence", dashURL(ScopeUID, "var-tenant=${tenant}", "var-rule=${__data.fields.rule_id}", "var-alert=${__data.fields.alert_id}")}}},
			{Title: "Agent activity across sessions and principals", Type: "table", W: 24, H: 9, Format: FormatTable,
				SQL: "SELECT actor AS agent, subject AS principal, session_id, count() AS decisions, countIf(effect = 'deny') AS denied, min(event_time) AS first, max(event_time) AS last\n" +
					"FROM events\nWHERE " + timeEvents + " AND kind = 'decision' AND " + tenantIn + " AND actor != '' AND " + agents + "\n" +
					"GROUP BY agent, principal, session_id\nORDER BY last DESC, agent, principal, session_id\nLIMIT 200",
				Links: []Link{{"Session timeline", dashURL(SessionUID, "var-tenant=${tenant}", "var-session=${__data.fields.session_id}")}}},
			{Title: "Agent decisions over time", Type: "timeseries", W: 24, H: 8, Format: FormatTimeSeries,
				SQL: "SELECT " + timeBucket + " AS time, concat(actor, ' ', effect) AS decision, count() AS decisions\n" +
					"FROM events\nWHERE " + timeEvents + " AND kind = 'decision' AND " + tenantIn + " AND actor != '' AND " + agents + "\n" +
					"GROUP BY time, decision\nORDER BY time, decision"},
		},
	}
}

func integrity() Board {
	return Board{
		UID: IntegrityUID, Title: "Rampart / Record integrity", File: "record-integrity.json",
		Description: "Whether the record is whole: gaps in instances' chains, events checkpoints declare unrecorded, dead letters, how far the collector is behind, the last signed checkpoint of each instance. `rampart verify` proves what this shows.",
		Tags:        []string{"rampart", "integrity"},
		Panels: []Panel{
			{Title: "Sequence gaps per chain", Type: "table", W: 12, H: 8, Format: FormatTable,
				Description: "Sequence numbers missing between the first and last stored event of each instance's epoch in the range; unrecorded ones are explained by a checkpoint.",
				SQL: "SELECT instance, epoch, min(seq) AS first_seq, max(seq) AS last_seq, uniqExact(seq) AS stored,\n" +
					"  max(seq) - min(seq) + 1 - uniqExact(seq) AS missing,\n" +
					"  sum(length(checkpoint_unrecorded)) AS unrecorded\n" +
					"FROM events\nWHERE " + timeEvents + " AND instance != ''\nGROUP BY instance, epoch\nHAVING missing > 0\nORDER BY missing DESC, instance, epoch"},
			{Title: "Unrecorded events in checkpoints", Type: "table", W: 12, H: 8, Format: FormatTable,
				Description: "Sequence numbers a signed checkpoint declares unrecorded: requests refused because JetStream and the spool could not take their events.",
				SQL: "SELECT event_time, instance, epoch, seq AS checkpoint_seq, length(checkpoint_unrecorded) AS unrecorded,\n" +
					"  arrayStringConcat(arrayMap(s -> toString(s), checkpoint_unrecorded), ',') AS unrecorded_seqs\n" +
					"FROM events\nWHERE " + timeEvents + " AND kind = 'checkpoint' AND notEmpty(checkpoint_unrecorded)\nORDER BY event_time, instance, epoch, seq"},
			{Title: "Last signed checkpoint per instance", Type: "table", W: 12, H: 8, Format: FormatTable,
				Description: "The newest checkpoint each instance published: `rampart verify -keys KEY -nats URL` checks the chain up to it.",
				SQL: "SELECT instance, epoch, max(event_time) AS last_checkpoint, argMax(seq, event_time_us) AS at_seq, argMax(checkpoint_key_id, event_time_us) AS key_id, count() AS checkpoints\n" +
					"FROM events\nWHERE " + timeEvents + " AND kind = 'checkpoint'\nGROUP BY instance, epoch\nORDER BY last_checkpoint DESC, instance, epoch"},
			{Title: "Storage delay (collected_at − event_time)", Type: "timeseries", W: 12, H: 8, Format: FormatTimeSeries, Unit: "s",
				Description: "How long events took from the enforcer to ClickHouse, from the stored columns.",
				SQL: "SELECT " + timeBucket + " AS time, max(toInt64(toUInt32(collected_at)) - toInt64(toUInt32(event_time))) AS max_delay\n" +
					"FROM events\nWHERE " + timeEvents + "\nGROUP BY time\nORDER BY time"},
			{Title: "Dead-lettered events", Type: "timeseries", W: 8, H: 8,
				Description: "Events the collector could never store, sent to RAMPART_DLQ with their reason.",
				PromQL:      []Prom{{"sum by (instance) (increase(rampart_collector_events_total{outcome=\"dead_lettered\"}[$__rate_interval]))", "{{instance}}"}}},
			{Title: "Collector lag", Type: "timeseries", W: 8, H: 8,
				Description: "Messages in the stream each collector has not yet stored.",
				PromQL:      []Prom{{"max by (instance) (rampart_collector_lag)", "{{instance}}"}}},
			{Title: "Sequence gaps seen by collectors", Type: "timeseries", W: 8, H: 8,
				PromQL: []Prom{{"sum by (instance) (increase(rampart_collector_sequence_gaps_total[$__rate_interval]))", "{{instance}}"}}},
		},
	}
}

func health() Board {
	return Board{
		UID: HealthUID, Title: "Rampart / Health", File: "health.json", From: "now-1h",
		Description: "Rampart's own metrics, scraped from each component's /metrics listener.",
		Tags:        []string{"rampart", "health"},
		Panels: []Panel{
			{Title: "Enforcer requests by effect", Type: "timeseries", W: 12, H: 8, Unit: "reqps",
				PromQL: []Prom{{"sum by (effect) (rate(rampart_enforcer_requests_total[$__rate_interval]))", "{{effect}}"}}},
			{Title: "Enforcer decision latency (p50, p99)", Type: "timeseries", W: 12, H: 8, Unit: "s",
				PromQL: []Prom{
					{"histogram_quantile(0.5, sum by (le) (rate(rampart_enforcer_request_duration_seconds_bucket[$__rate_interval])))", "p50"},
					{"histogram_quantile(0.99, sum by (le) (rate(rampart_enforcer_request_duration_seconds_bucket[$__rate_interval])))", "p99"},
				}},
			{Title: "Enforcer refusals: overloaded, audit unavailable", Type: "timeseries", W: 12, H: 8, Unit: "reqps",
				PromQL: []Prom{{"sum by (code) (rate(rampart_enforcer_requests_total{code=~\"overloaded|audit_unavailable\"}[$__rate_interval]))", "{{code}}"}}},
			{Title: "Events recorded, spooled, unrecorded", Type: "timeseries", W: 12, H: 8,
				PromQL: []Prom{
					{"sum(rate(rampart_audit_published_total[$__rate_interval]))", "published"},
					{"sum(rate(rampart_audit_spooled_total[$__rate_interval]))", "spooled"},
					{"sum(rate(rampart_audit_unrecorded_total[$__rate_interval]))", "unrecorded"},
				}},
			{Title: "Spool depth", Type: "timeseries", W: 8, H: 8, Unit: "bytes",
				PromQL: []Prom{{"max by (instance) (rampart_audit_spool_bytes)", "{{instance}}"}}},
			{Title: "Collector throughput", Type: "timeseries", W: 8, H: 8,
				PromQL: []Prom{{"sum by (outcome) (rate(rampart_collector_events_total[$__rate_interval]))", "{{outcome}}"}}},
			{Title: "Collector insert latency (p99)", Type: "timeseries", W: 8, H: 8, Unit: "s",
				PromQL: []Prom{{"histogram_quantile(0.99, sum by (le) (rate(rampart_collector_insert_duration_seconds_bucket[$__rate_interval])))", "p99"}}},
			{Title: "Correlator throughput", Type: "timeseries", W: 12, H: 8,
				PromQL: []Prom{{"sum(rate(rampart_correlator_events_total[$__rate_interval]))", "events"}}},
			{Title: "Collector and correlator lag", Type: "timeseries", W: 12, H: 8,
				PromQL: []Prom{
					{"max by (instance) (rampart_collector_lag)", "collector {{instance}}"},
					{"max by (instance) (rampart_correlator_lag)", "correlator {{instance}}"},
				}},
		},
	}
}
