// Package stream declares the JetStream streams and consumers that carry
// events from enforcers to collectors and correlators, and creates them
// idempotently: every component ensures them at start, so any start order works.
package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/schema/subject"
)

// Names of the streams.
const (
	Events     = "RAMPART_EVENTS"
	DeadLetter = "RAMPART_DLQ"
	// DeadLetterPrefix is where undecodable events go, suffixed by the consumer name.
	DeadLetterPrefix = "rampart.dlq."
)

// Config is the stream configuration operators may tune.
type Config struct {
	// Replicas of each stream: 1 on a single node, 3 in a production cluster.
	Replicas int `yaml:"replicas"`
	// MaxAge bounds how long events stay in JetStream after being consumed
	// elsewhere; ClickHouse is the long-term record.
	MaxAge time.Duration `yaml:"max_age"`
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for
	// de-duplicating republished events.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// Defaults returns the single-node configuration.
func Defaults() Config {
	return Config{Replicas: 1, MaxAge: 7 * 24 * time.Hour, DuplicateWindow: 10 * time.Minute}
}

// EventsConfig is the JetStream configuration of the events stream.
func EventsConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Events,
		Description: "Rampart audit events, v1",
		Subjects:    []string{subject.Prefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
	}
}

// DeadLetterConfig is the JetStream configuration of the dead-letter stream.
func DeadLetterConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DeadLetter,
		Description: "Rampart events that could not be stored, with the reason",
		Subjects:    []string{DeadLetterPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
	}
}

// Ensure creates or updates both streams; calling it again is harmless.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	if _, err := createOrUpdate(ctx, js, DeadLetterConfig(c)); err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", DeadLetter, err)
	}
	s, err := createOrUpdate(ctx, js, EventsConfig(c))
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Events, err)
	}
	return s, nil
}

// createOrUpdate is CreateOrUpdateStream for components starting at once
// (an enforcer, a collector and a correlator on a new JetStream): one that
// found no stream and lost the create to another finds it there, so the
// create becomes an update instead of failing the start.
func createOrUpdate(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.CreateOrUpdateStream(ctx, cfg)
	}
	return s, err
}

// Where a new durable consumer starts reading.
const (
	DeliverAll = "all" // every event the stream still holds (the default)
	DeliverNew = "new" // only events published after the consumer is created
)

// DurableConsumer returns the configuration of a durable pull consumer of
// events with explicit acks. (Cumulative acks are unsafe here: after a
// redelivery, acking the last message of a batch would also ack earlier
// messages still waiting to be redelivered.) maxPending bounds
// unacknowledged messages, which is the consumer's memory bound.
func DurableConsumer(name, deliver string, maxPending int, ackWait time.Duration) jetstream.ConsumerConfig {
	policy := jetstream.DeliverAllPolicy
	if deliver == DeliverNew {
		policy = jetstream.DeliverNewPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "rampart " + name,
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxPending,
		MaxDeliver:    -1,
		FilterSubject: subject.Prefix + ">",
	}
}

// DetectLookback is the key-value bucket where correlators remember, past
// their replay horizon, which values a new_value rule has already alerted
// on, so a restart does not report them new again.
const DetectLookback = "RAMPART_DETECT_LOOKBACK"

// DetectLookbackConfig is the bucket's configuration: each key lives ttl
// (the longest lookback that needs it) after it was last written.
func DetectLookbackConfig(c Config, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      DetectLookback,
		Description: "Rampart detections: values new_value rules alerted on, kept for their lookback",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}
