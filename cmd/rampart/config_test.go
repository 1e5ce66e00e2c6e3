package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
)

// The documented examples are the defaults, and must load as they are.
func TestExampleConfigsAreTheDefaults(t *testing.T) {
	col, err := collectorConfig([]string{"-config", "../../collector/collector.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := collector.Defaults(); col.Source != want.Source || col.ClickHouse != want.ClickHouse {
		t.Fatalf("collector example differs from defaults:\n%+v\n%+v", col, want)
	}
	cor, err := correlatorConfig([]string{"-config", "../../correlator/correlator.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := correlator.Defaults(); cor.CacheSessions != want.CacheSessions || cor.Source != want.Source {
		t.Fatalf("correlator example differs from defaults:\n%+v\n%+v", cor, want)
	}
}

func TestOverridesAndStrictness(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("batch_wait: 2s\nclickhouse: {addr: 'file:9000'}\n"), 0o600)
	t.Setenv(envCHAddr, "env:9000")
	cfg, err := collectorConfig([]string{"-config", good, "-database", "flagdb"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BatchWait != 2*time.Second || cfg.ClickHouse.Addr != "env:9000" || cfg.ClickHouse.Database != "flagdb" {
		t.Fatalf("precedence wrong: %+v", cfg)
	}

	cases := map[string]string{
		"unknown key":      "batch_sise: 10\n",
		"unknown nested":   "clickhouse: {adress: x}\n",
		"invalid value":    "batch_size: 0\n",
		"invalid database": "clickhouse: {database: 'a;drop'}\n",
		"invalid deliver":  "deliver: sometimes\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			os.WriteFile(path, []byte(body), 0o600)
			if _, err := collectorConfig([]string{"-config", path}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
