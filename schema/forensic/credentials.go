package forensic

// CredentialUse is what one task credential touched: its issue, then every
// decision that put it on a call, in order. Columns: time, kind, chain
// (principal first, current actor last), task_id, tool, destination,
// effect, rule_id, request_id, event_id.
func CredentialUse(db, tenant, jti string) string {
	return inDB(db, `SELECT
    event_time AS time,
    kind,
    arrayStringConcat(arrayConcat([subject], chain_subjects), ' -> ') AS chain,
    task_id,
    tool,
    destination,
    effect,
    rule_id,
    request_id,
    event_id
FROM {db}.events
WHERE tenant = `+Quote(tenant)+` AND (
    (kind = 'decision' AND decision_credential_jti = `+Quote(jti)+`) OR
    (kind = 'credential' AND credential_jti = `+Quote(jti)+`))
ORDER BY event_time_us, instance, seq, kind`)
}
