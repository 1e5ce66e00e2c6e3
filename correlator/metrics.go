package correlator

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/rampart-io/rampart/component/lag"
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
	c.metrics.lag, err = lag.Observe(m, "rampart.correlator.lag",
		"Messages in the stream this correlator has not yet correlated", c.in.Lag)
	return err
}
