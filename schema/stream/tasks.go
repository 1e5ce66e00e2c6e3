package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Tasks is the key-value bucket holding every live task's state, shared by
// all enforcer instances: what an orchestrator declared (purpose, tools,
// destinations, data classes, call budget, deadline), how much of the
// budget is spent, when the task was last active, the credentials minted
// under it, and whether it ended. Every change is a revision-checked
// update, so two instances never both spend the last call of a budget and
// exactly one of them ends a task. One key per task:
//
//	<tenant>.<task>   each part base64url, as in Revocations
const Tasks = "RAMPART_TASKS"

// TasksConfig is the bucket's configuration. ttl must outlast a task's
// longest life (max_task_duration) plus its credentials' (max_ttl), so a
// record is never forgotten while its task or tokens could still act.
func TasksConfig(c Config, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Tasks,
		Description: "Rampart tasks: declared scope, budget spent, credentials minted, end",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// TaskKey is the key of tenant's task in the Tasks bucket.
func TaskKey(tenant, task string) string { return b64(tenant) + "." + b64(task) }

// EnsureTaskBuckets creates or updates the Tasks and Revocations buckets.
func EnsureTaskBuckets(ctx context.Context, js jetstream.JetStream, c Config, ttl time.Duration) (tasks, revocations jetstream.KeyValue, err error) {
	if tasks, err = js.CreateOrUpdateKeyValue(ctx, TasksConfig(c, ttl)); err != nil {
		return nil, nil, fmt.Errorf("ensure bucket %s: %w", Tasks, err)
	}
	if revocations, err = js.CreateOrUpdateKeyValue(ctx, RevocationsConfig(c, ttl)); err != nil {
		return nil, nil, fmt.Errorf("ensure bucket %s: %w", Revocations, err)
	}
	return tasks, revocations, nil
}
