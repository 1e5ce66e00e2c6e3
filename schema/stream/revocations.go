package stream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Revocations is the key-value bucket through which an ended task and every
// credential minted for it are revoked everywhere at once: each enforcer and
// each verifying backend watches it, so a record written by one enforcer is
// refused by all of them within the watch's delivery time.
//
// Two kinds of key share the bucket:
//
//	task.<tenant>.<task>   the task ended: every call under it is refused
//	jti.<jti>              one credential is revoked wherever it is shown
//
// Each part is base64url-encoded (no padding): tenants and task ids are
// whatever the caller sent, and KV keys allow only [-/_=.a-zA-Z0-9].
const Revocations = "RAMPART_REVOCATIONS"

// RevocationsConfig is the bucket's configuration. ttl must be at least the
// longest a credential can live (the enforcer's credential max_ttl) plus the
// longest a task id can be reused, so no record expires while the token it
// revokes could still be presented.
func RevocationsConfig(c Config, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Revocations,
		Description: "Rampart revocations: ended tasks and revoked credentials",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// Revocation is the value of a revocations key: what ended, when, why and
// by whom, and until when it matters (the latest exp of what it revokes).
type Revocation struct {
	// Tenant may be empty: an unidentified caller's tenant is "".
	Tenant string `json:"tenant"`
	TaskID string `json:"task_id,omitempty"`
	// JTI is set on a credential's record; a task's record leaves it empty.
	JTI string `json:"jti,omitempty"`
	// Reason is why: completed, deadline, idle, revoked (RFC 7009) ...
	Reason string `json:"reason"`
	// By is the instance or principal that revoked it.
	By        string    `json:"by,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
	// Until is when the record can be forgotten: the latest expiry of any
	// credential it revokes.
	Until time.Time `json:"until,omitempty"`
}

// TaskRevocationKey is the key recording that tenant's task ended.
func TaskRevocationKey(tenant, task string) string {
	return "task." + b64(tenant) + "." + b64(task)
}

// JTIRevocationKey is the key recording that the credential jti is revoked.
func JTIRevocationKey(jti string) string {
	return "jti." + b64(jti)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// ErrRevocationKey reports a key that is neither kind of revocations key.
var ErrRevocationKey = errors.New("stream: not a revocations key")

// ParseRevocationKey splits a revocations key back into its parts: for a
// task key tenant and task are set, for a jti key only jti.
func ParseRevocationKey(key string) (tenant, task, jti string, err error) {
	switch {
	case strings.HasPrefix(key, "task."):
		rest := strings.TrimPrefix(key, "task.")
		tn, tk, ok := strings.Cut(rest, ".")
		tenant, err1 := base64.RawURLEncoding.DecodeString(tn)
		t, err2 := base64.RawURLEncoding.DecodeString(tk)
		if !ok || err1 != nil || err2 != nil || len(t) == 0 {
			return "", "", "", fmt.Errorf("%w: %q", ErrRevocationKey, key)
		}
		return string(tenant), string(t), "", nil
	case strings.HasPrefix(key, "jti."):
		j, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "jti."))
		if err != nil || len(j) == 0 {
			return "", "", "", fmt.Errorf("%w: %q", ErrRevocationKey, key)
		}
		return "", "", string(j), nil
	}
	return "", "", "", fmt.Errorf("%w: %q", ErrRevocationKey, key)
}

// DecodeRevocation reads a revocations value strictly.
func DecodeRevocation(b []byte) (Revocation, error) {
	var r Revocation
	if err := json.Unmarshal(b, &r); err != nil {
		return Revocation{}, fmt.Errorf("stream: revocation: %w", err)
	}
	if (r.TaskID == "" && r.JTI == "") || r.RevokedAt.IsZero() {
		return Revocation{}, fmt.Errorf("stream: revocation: task or jti, and revoked_at, are required")
	}
	return r, nil
}
