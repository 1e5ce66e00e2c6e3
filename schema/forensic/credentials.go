package forensic

// CredentialUse is what one task credential touched in one tenant: its
// issue and its revocation (credential events), and every decision that
// put it on a call, in order, each event once however often it was
// stored. It reads events_raw by tenant, not through FINAL: no index
// names a jti, so the tenant is the narrowest key. Columns: time, kind,
// chain (principal first, current actor last), task_id, tool,
// destination, effect, rule_id, request_id, event_id, then for the
// credential events action, audience, scope (space-separated),
// expires_us and reason, and for every row instance, epoch, seq and
// time_us, which place it in its chain.
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
    event_id,
    credential_action AS action,
    credential_audience AS audience,
    arrayStringConcat(credential_scope, ' ') AS scope,
    credential_expires_us AS expires_us,
    credential_reason AS reason,
    instance,
    epoch,
    seq,
    event_time_us AS time_us
FROM (
    SELECT event_time, event_time_us, kind, subject, chain_subjects, task_id, tool, destination, effect, rule_id,
        request_id, event_id, credential_action, credential_audience, credential_scope, credential_expires_us,
        credential_reason, instance, epoch, seq
    FROM {db}.events_raw
    WHERE tenant = `+Quote(tenant)+` AND (
        (kind = 'decision' AND decision_credential_jti = `+Quote(jti)+`) OR
        (kind = 'credential' AND credential_jti = `+Quote(jti)+`))
    LIMIT 1 BY event_id)
ORDER BY time_us, instance, seq, kind`)
}
