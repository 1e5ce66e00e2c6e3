package correlator

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/inventory"
	"github.com/rampart-io/rampart/correlator/record"
	"github.com/rampart-io/rampart/schema/stream"
)

// Config configures a correlator. Every field has a default (Defaults);
// decoding is strict, so an unknown key is an error.
type Config struct {
	// Source is where events are read: NATS, consumer and batching.
	stream.Source `yaml:",inline"`
	// CacheSessions bounds sessions kept in memory; others are reloaded.
	CacheSessions int `yaml:"cache_sessions"`
	// ClickHouse is where session rows are written.
	ClickHouse chstore.Config `yaml:"clickhouse"`
	// Instance names this correlator's own chain of events (alerts, rule
	// reloads, checkpoints), as an enforcer's instance names its own. It
	// must begin with "correlator:" (InstancePrefix): detections skip those
	// instances' records. Default "correlator:<hostname>", with
	// "-p<index>" when partitioned.
	Instance string `yaml:"instance"`
	// Partition is this process's share of the tenants, when several
	// correlators share the stream. Default: one partition, all tenants.
	Partition Partition `yaml:"partition"`
	// Detect configures the detection rules run over the stream.
	Detect DetectConfig `yaml:"detect"`
	// Checkpoint configures the signed checkpoints of the correlator's chain.
	Checkpoint record.Config `yaml:"checkpoint"`
	// Inventory is the agent inventory detection rules read (agent_*,
	// inventory_loaded), the collector's setting in the same form: give
	// both the same file, so what a rule saw live is what the collector
	// stored and a replay reads. Default none.
	Inventory inventory.Config `yaml:"inventory"`
}

// Partition selects the tenants one correlator handles: those whose name
// hashes (FNV-1a, 32 bit) to Index modulo Count. A detection group never
// spans tenants, so no group's events are split between correlators.
// Every partition has its own durable consumers (names suffixed
// "-p<index>of<count>") and reads the whole stream, dropping other
// partitions' events; changing Count starts new consumers.
type Partition struct {
	// Index of this correlator's partition, from 0. Default 0.
	Index int `yaml:"index"`
	// Count of partitions, that is of correlators sharing the stream. Default 1.
	Count int `yaml:"count"`
}

// Owns reports whether tenant belongs to this partition.
func (p Partition) Owns(tenant string) bool {
	if p.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int(h.Sum32()%uint32(p.Count)) == p.Index
}

// Judges reports whether this partition gives the engine tenant's events:
// its own tenants', and, for the partition that owns the tenant-less
// events (enforcers' checkpoints and policy reloads), every tenant's,
// since rules over an enforcer instance's whole record (sequence gaps)
// group its events across the tenants it serves. That partition keeps
// only the alerts it owns (see detection.keep).
func (p Partition) Judges(tenant string) bool { return p.Owns(tenant) || p.Owns("") }

// DetectConfig configures detection.
type DetectConfig struct {
	// Shipped loads the rule pack shipped with Rampart. Default true.
	Shipped bool `yaml:"shipped"`
	// RulesDir is a directory of the operator's own rules, loaded beside
	// the shipped pack and reloaded when it changes. Default none.
	RulesDir string `yaml:"rules_dir"`
	// BatchWait is how long the detection consumer waits to fill a batch:
	// at most this much is added to an alert's latency. Default 20ms.
	BatchWait time.Duration `yaml:"batch_wait"`
	// ReloadInterval is how often RulesDir is checked for changes. Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// MaxGroupsPerRule bounds the open groups (windows) one rule keeps; a
	// tenant holds at most a tenth of them and a principal a tenth of its
	// tenant's, each evicting its own least recently used group past its
	// bound and raising a detection-state-exhausted alert. Default 100000.
	MaxGroupsPerRule int `yaml:"max_groups_per_rule"`
	// MaxEvidence bounds the event ids an alert lists. Default 20.
	MaxEvidence int `yaml:"max_evidence"`
	// Recovery says how open windows come back after a restart.
	Recovery RecoveryConfig `yaml:"recovery"`
}

// RecoveryConfig configures how open windows are rebuilt at start.
type RecoveryConfig struct {
	// Horizon is how far back the stream is replayed, by time, to rebuild
	// open windows: it must cover the longest window of any rule, or a
	// window open at a crash comes back missing its oldest events.
	// Default 1h. Replay costs a read of the stream over that span.
	Horizon time.Duration `yaml:"horizon"`
}

// Enabled reports whether any rules are configured.
func (d DetectConfig) Enabled() bool { return d.Shipped || d.RulesDir != "" }

// Defaults returns the single-node configuration.
func Defaults() Config {
	c := Config{Source: stream.DefaultSource("correlator"), CacheSessions: 100000, ClickHouse: chstore.Defaults(),
		Partition: Partition{Index: 0, Count: 1},
		Detect: DetectConfig{Shipped: true, BatchWait: 20 * time.Millisecond, ReloadInterval: 10 * time.Second, MaxGroupsPerRule: 100000,
			MaxEvidence: 20, Recovery: RecoveryConfig{Horizon: time.Hour}},
		Inventory: inventory.Defaults()}
	c.Checkpoint.SetDefaults()
	return c
}

// Validate checks c.
func (c Config) Validate() error {
	if err := c.Source.Validate(); err != nil {
		return fmt.Errorf("correlator: %w", err)
	}
	switch {
	case c.CacheSessions < 1:
		return errors.New("correlator: cache_sessions must be positive")
	case c.Partition.Count < 1 || c.Partition.Index < 0 || c.Partition.Index >= c.Partition.Count:
		return fmt.Errorf("correlator: partition index %d of count %d: want 0 <= index < count", c.Partition.Index, c.Partition.Count)
	case c.Detect.ReloadInterval <= 0 || c.Detect.BatchWait <= 0:
		return errors.New("correlator: detect.reload_interval and detect.batch_wait must be positive")
	case c.Detect.MaxGroupsPerRule < 1 || c.Detect.MaxEvidence < 1:
		return errors.New("correlator: detect.max_groups_per_rule and detect.max_evidence must be positive")
	case c.Instance != "" && !IsCorrelatorInstance(c.Instance):
		return fmt.Errorf("correlator: instance %q must begin with %q", c.Instance, InstancePrefix)
	case c.Detect.Recovery.Horizon <= 0:
		return errors.New("correlator: detect.recovery.horizon must be positive")
	}
	if err := c.Checkpoint.Validate(); err != nil {
		return fmt.Errorf("correlator: checkpoint: %w", err)
	}
	if err := c.Inventory.Validate(); err != nil {
		return fmt.Errorf("correlator: %w", err)
	}
	return c.ClickHouse.Validate()
}

// instance is the configured instance name, or the default one.
func (c Config) instance() string {
	if c.Instance != "" {
		return c.Instance
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	name := InstancePrefix + host
	if c.Partition.Count > 1 {
		name += fmt.Sprintf("-p%d", c.Partition.Index)
	}
	return name
}

// Consumers names the durable consumers this correlator reads: its
// sessions' and, when detection is on, its detections'.
func (c Config) Consumers() []string {
	if !c.Detect.Enabled() {
		return []string{c.consumer()}
	}
	return []string{c.consumer(), c.detectConsumer()}
}

// consumer is the durable consumer of this partition's sessions.
func (c Config) consumer() string { return c.partitioned(c.Consumer) }

// detectConsumer is the durable consumer of this partition's detections.
func (c Config) detectConsumer() string { return c.partitioned(c.Consumer + "-detect") }

func (c Config) partitioned(name string) string {
	if c.Partition.Count <= 1 {
		return name
	}
	return fmt.Sprintf("%s-p%dof%d", name, c.Partition.Index, c.Partition.Count)
}
