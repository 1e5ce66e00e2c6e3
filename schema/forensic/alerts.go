package forensic

// Alerts lists the detections' alerts, most severe first, then newest.
// Columns: raised (time), tenant, severity, rule_id, title, group (field=value,
// comma-separated), matched, evidence (event ids, comma-separated), alert_id.
func Alerts(db string) string {
	return inDB(db, `SELECT
    event_time AS raised,
    tenant,
    severity,
    rule_id,
    title,
    arrayStringConcat(arrayMap((f, v) -> concat(f, '=', v), group_fields, group_values), ', ') AS grp,
    toString(matched) AS matched,
    arrayStringConcat(evidence, ',') AS evidence,
    alert_id
FROM {db}.alerts
ORDER BY indexOf(['critical', 'high', 'medium', 'low', 'info'], severity), event_time_us DESC, alert_id`)
}

// AlertEvidence is one alert's evidence as a timeline, in the order the
// events happened. Columns: time, kind, chain (principal first, current
// actor last), session_id, tool, destination, data_class, effect, rule_id,
// request_id, event_id.
func AlertEvidence(db, tenant, alertID string) string {
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
FROM {db}.events
WHERE tenant = `+Quote(tenant)+` AND event_id IN (
    SELECT arrayJoin(evidence) FROM {db}.alerts WHERE tenant = `+Quote(tenant)+` AND alert_id = `+Quote(alertID)+`)
ORDER BY event_time_us, instance, seq`)
}
