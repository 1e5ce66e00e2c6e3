package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/correlator"
)

// The documented examples are the defaults, and must load as they are.
func TestExampleConfigsAreTheDefaults(t *testing.T) {
	col, err := collectorConfig([]string{"-config", "../../collector/collector.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := collector.Defaults(); !reflect.DeepEqual(col, want) {
		t.Fatalf("collector example differs from defaults:\n%+v\n%+v", col, want)
	}
	cor, err := correlatorConfig([]string{"-config", "../../correlator/correlator.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := correlator.Defaults(); !reflect.DeepEqual(cor, want) {
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
		"unknown key":          "batch_sise: 10\n",
		"unknown nested":       "clickhouse: {adress: x}\n",
		"invalid value":        "batch_size: 0\n",
		"invalid database":     "clickhouse: {database: 'a;drop'}\n",
		"invalid deliver":      "deliver: sometimes\n",
		"invalid cluster":      "clickhouse: {cluster: 'a;DROP'}\n",
		"invalid memory limit": "memory_limit_mib: -2\n",
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

// `rampart run` composes the embedded JetStream and the three components
// through package pipeline, each from its own file, with the common
// ClickHouse overrides applied to both ClickHouse readers and writers.
func TestRunConfig(t *testing.T) {
	dir := t.TempDir()
	col := filepath.Join(dir, "collector.yaml")
	os.WriteFile(col, []byte("batch_wait: 3s\n"), 0o600)
	cfg, err := runConfig([]string{"-enforcer-config", "../../deploy/quickstart/enforcer.yaml", "-collector-config", col,
		"-data-dir", dir, "-nats-listen", "127.0.0.1:0", "-clickhouse", "ch:9000", "-database", "rundb"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "" || cfg.NATS.Listen != "127.0.0.1:0" || cfg.NATS.StoreDir != filepath.Join(dir, "nats") {
		t.Fatalf("run must start the embedded JetStream: %+v %+v", cfg.NATSURL, cfg.NATS)
	}
	if cfg.Collector.BatchWait != 3*time.Second || cfg.Correlator.BatchWait != correlator.Defaults().BatchWait {
		t.Fatalf("component files not applied: collector %v correlator %v", cfg.Collector.BatchWait, cfg.Correlator.BatchWait)
	}
	for name, ch := range map[string]chstore.Config{"collector": cfg.Collector.ClickHouse, "correlator": cfg.Correlator.ClickHouse} {
		if ch.Addr != "ch:9000" || ch.Database != "rundb" {
			t.Errorf("%s clickhouse %+v, want the flags' address and database", name, ch)
		}
	}
	if cfg.Enforcer.Upstream == "" {
		t.Fatalf("enforcer file not loaded: %+v", cfg.Enforcer)
	}
	if _, err := runConfig([]string{"-collector-config", col}); err == nil || !strings.Contains(err.Error(), "-enforcer-config") {
		t.Fatalf("run without -enforcer-config: %v", err)
	}
}

// `rampart run -nats` composes the same components on an existing NATS,
// a cluster given by its seeds, and refuses the embedded server's flags,
// which would then do nothing.
func TestRunOnACluster(t *testing.T) {
	seeds := "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
	cfg, err := runConfig([]string{"-enforcer-config", "../../deploy/quickstart/enforcer.yaml", "-nats", seeds})
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.NATSURL) != seeds {
		t.Fatalf("run -nats: NATSURL %q, want the seeds %q", cfg.NATSURL, seeds)
	}
	for _, flag := range []string{"-data-dir", "-nats-listen", "-nats-sync-always"} {
		args := []string{"-enforcer-config", "../../deploy/quickstart/enforcer.yaml", "-nats", seeds, flag}
		if flag != "-nats-sync-always" {
			args = append(args, "x")
		}
		if _, err := runConfig(args); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("run -nats %s: %v, want it refused", flag, err)
		}
	}
}

// Every component that reads the stream takes a cluster's seeds as a YAML
// list or one comma-separated string, and a bad entry is an error.
func TestConsumersTakeSeedLists(t *testing.T) {
	dir := t.TempDir()
	want := "nats://n1:4222,nats://n2:4222,nats://n3:4222"
	for name, body := range map[string]string{
		"list":   "nats_url: [nats://n1:4222, nats://n2:4222, nats://n3:4222]\n",
		"string": "nats_url: " + want + "\n",
	} {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(body), 0o600)
		col, err := collectorConfig([]string{"-config", path})
		if err != nil {
			t.Fatalf("collector, %s: %v", name, err)
		}
		cor, err := correlatorConfig([]string{"-config", path})
		if err != nil {
			t.Fatalf("correlator, %s: %v", name, err)
		}
		if string(col.NATSURL) != want || string(cor.NATSURL) != want {
			t.Fatalf("%s: collector %q, correlator %q, want %q", name, col.NATSURL, cor.NATSURL, want)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("nats_url: [nats://n1:4222, '']\n"), 0o600)
	if _, err := collectorConfig([]string{"-config", bad}); err == nil || !strings.Contains(err.Error(), "empty entry") {
		t.Fatalf("an empty seed: %v", err)
	}
}
