package forensic

// Alerts lists the detections' alerts, most severe first, then newest.
// Columns: raised (time), tenant, severity, rule_id, title, group (field=value,
// comma-separated), matched, evidence (event ids, comma-separated), alert_id.
//
// It reads events_raw, not the alerts view, whose FINAL merges the whole
// table: the kind is read first (PREWHERE), so only the granules holding
// alerts are read whole, and each alert counts once by its id.
func Alerts(db string) string {
	return inDB(db, `SELECT
    event_time AS raised,
    tenant,
    alert_severity AS severity,
    alert_rule_id AS rule_id,
    alert_title AS title,
    arrayStringConcat(arrayMap((f, v) -> concat(f, '=', v), alert_group_fields, alert_group_values), ', ') AS grp,
    toString(alert_count) AS matched,
    arrayStringConcat(alert_evidence, ',') AS evidence,
    event_id AS alert_id
FROM (
    SELECT event_time, event_time_us, tenant, alert_severity, alert_rule_id, alert_title, alert_group_fields,
        alert_group_values, alert_count, alert_evidence, event_id
    FROM {db}.events_raw
    PREWHERE kind = 'alert'
    LIMIT 1 BY event_id)
ORDER BY indexOf(['critical', 'high', 'medium', 'low', 'info'], severity), event_time_us DESC, alert_id`)
}

// AlertEvidence is one alert's evidence as a timeline, in the order the
// events happened. Columns: time, kind, chain (principal first, current
// actor last), session_id, tool, destination, data_class, effect, rule_id,
// request_id, event_id.
//
// The alert is found through event_keys, its evidence in the tenant's
// seconds between the alert's first and last evidence event.
func AlertEvidence(db, tenant, alertID string) string {
	alert := `FROM {db}.events_raw WHERE ` + KeyWindow(tenant, []string{"alert"}, alertID, "") + `
          AND kind = 'alert' AND event_id = ` + Quote(alertID)
	return inDB(db, `SELECT
    event_time AS time,
    kind,
    arrayStringConcat(arrayConcat([subject], chain_subjects), ' -> ') AS chain,
    session_id,
    tool,
    destination,
    data_class,
    effect,
    rule_id,
    request_id,
    event_id
FROM (
    SELECT event_time, event_time_us, instance, seq, kind, subject, chain_subjects, session_id, tool,
        destination, data_class, effect, rule_id, request_id, event_id
    FROM {db}.events_raw
    WHERE tenant = `+Quote(tenant)+`
      AND event_time >= (SELECT toDateTime(intDiv(min(alert_first_us), 1000000)) `+alert+`)
      AND event_time <= (SELECT toDateTime(intDiv(max(alert_last_us), 1000000)) `+alert+`)
      AND event_id IN (SELECT arrayJoin(alert_evidence) `+alert+`)
    LIMIT 1 BY event_id)
ORDER BY event_time_us, instance, seq`)
}
