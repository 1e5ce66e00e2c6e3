package enforcer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-io/rampart/enforcer"
)

func TestConfigFromArgsPrecedence(t *testing.T) {
	dir := t.TempDir()
	base := "upstream: http://file:1\npolicy_file: p.yaml\nidentity:\n  issuer: https://idp\n  audience: a\n  jwks_file: k.json\n"
	file := filepath.Join(dir, "enforcer.yaml")
	if err := os.WriteFile(file, []byte(base+"nats:\n  url: nats://file:4222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(enforcer.EnvNATSURL, "nats://env:4222")
	cfg, err := enforcer.ConfigFromArgs("t", []string{"-config", file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://env:4222" || cfg.Upstream != "http://file:1" || cfg.MemoryLimitMiB != 40 || cfg.MaxInFlight != 1024 {
		t.Fatalf("env over file, defaults: %+v", cfg)
	}
	cfg, err = enforcer.ConfigFromArgs("t", []string{"-config", file, "-nats", "nats://flag:4222", "-upstream", "http://flag:1"})
	if err != nil || cfg.NATS.URL != "nats://flag:4222" || cfg.Upstream != "http://flag:1" {
		t.Fatalf("flags over env: %+v %v", cfg, err)
	}
	if _, err := enforcer.ConfigFromArgs("t", []string{"-nosuch"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(base+"memory_limit_mib: -2\n"), 0o600)
	if _, err := enforcer.ConfigFromArgs("t", []string{"-config", bad}); err == nil {
		t.Fatal("memory_limit_mib -2 accepted")
	}
}
