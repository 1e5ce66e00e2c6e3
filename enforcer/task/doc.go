// Package task holds the enforcer's tasks: what an orchestrator declared
// a task is for (purpose, tools, destinations, data classes, a call budget
// and a deadline), or, for a task never declared, what its first call
// started. Every instance shares one record per task in the RAMPART_TASKS
// bucket (Store): each allowed call under a task spends its budget and
// marks it active through a revision-checked update, so two instances
// never both spend the last call and a call that reaches the record after
// the task ended is refused. A task ends once — completed by its
// declarer, at its deadline, or idle — by the one update that marks the
// record ended; that instance then writes the task and each credential
// minted under it into RAMPART_REVOCATIONS.
package task
