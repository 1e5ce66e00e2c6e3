package main

import (
	"context"
	"strings"
	"testing"
)

// TestVerbsRefuseFlagsTheyIgnore: a verb accepts exactly the common flags
// it reads; one it would ignore (run reads one file per component, verify
// and demo read no config file) is an error, as an unknown config key is.
func TestVerbsRefuseFlagsTheyIgnore(t *testing.T) {
	verbs := map[string]func(context.Context, []string) error{
		"run": runAll, "migrate": runMigrate, "verify": runVerify, "demo": runDemo,
		"collector":     func(_ context.Context, args []string) error { _, err := collectorConfig(args); return err },
		"correlator":    func(_ context.Context, args []string) error { _, err := correlatorConfig(args); return err },
		"detect replay": runDetectReplay,
	}
	ignored := map[string][]string{
		"run":     {"-config"},
		"migrate": {"-nats"},
		"verify":  {"-config"},
		"demo":    {"-config"},
		// Replay reads ClickHouse only and publishes nothing.
		"detect replay": {"-config", "-nats"},
		// The correlator reads and writes ClickHouse over the native protocol only.
		"correlator": {"-clickhouse-http"},
	}
	for verb, flags := range ignored {
		for _, f := range flags {
			err := verbs[verb](context.Background(), []string{f, "x"})
			if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: "+f) {
				t.Errorf("rampart %s %s x: %v, want the flag refused", verb, f, err)
			}
		}
	}
	// The flags a verb does read are defined: a bad value gets past parsing
	// to the verb's own error, not "not defined".
	read := map[string][]string{
		"migrate":       {"-config", "-clickhouse", "-database"},
		"run":           {"-nats", "-clickhouse", "-clickhouse-http", "-database"},
		"verify":        {"-nats", "-clickhouse", "-clickhouse-http", "-database"},
		"collector":     {"-config", "-nats", "-clickhouse", "-clickhouse-http", "-database"},
		"correlator":    {"-config", "-nats", "-clickhouse", "-database"},
		"detect replay": {"-clickhouse", "-clickhouse-http", "-database"},
	}
	for verb, flags := range read {
		for _, f := range flags {
			if err := verbs[verb](context.Background(), []string{f}); err == nil || !strings.Contains(err.Error(), "flag needs an argument") {
				t.Errorf("rampart %s %s: %v, want the flag defined", verb, f, err)
			}
		}
	}
}
