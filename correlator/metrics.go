package correlator

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var (
	outcomeRead        = metric.WithAttributes(attribute.String("outcome", "read"))
	outcomeUndecodable = metric.WithAttributes(attribute.String("outcome", "undecodable"))
)

// metrics are the correlator's throughput and how far it is behind the
// stream, registered with the global OpenTelemetry meter provider (a no-op
// unless the process installed one).
type metrics struct {
	events metric.Int64Counter // by outcome: read, undecodable
	lag    metric.Registration
}

func (c *Correlator) instrument() error {
	m := otel.Meter("github.com/rampart-io/rampart/correlator")
	var err error
	if c.metrics.events, err = m.Int64Counter("rampart.correlator.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events read from JetStream, by outcome (undecodable messages count one)")); err != nil {
		return err
	}
	c.metrics.events.Add(context.Background(), 0, outcomeRead)
	lag, err := m.Int64ObservableGauge("rampart.correlator.lag", metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the stream this correlator has not yet correlated"))
	if err != nil {
		return err
	}
	c.metrics.lag, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := c.in.Lag(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(lag, n)
		return nil
	}, lag)
	return err
}
