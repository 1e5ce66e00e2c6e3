// Package lag publishes how far a stream consumer is behind, the gauge
// every component reading JetStream exports the same way. It needs only
// the OpenTelemetry metric API, so the components that use it do not
// link the exporters.
package lag

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Observe registers the gauge name: how many messages of the stream a
// consumer has not yet handled, asked of lag at each collection (bounded
// to 2 s, so a slow server never stalls the exporter). Unregister the
// registration when the consumer closes.
func Observe(m metric.Meter, name, description string, lag func(context.Context) (int64, error)) (metric.Registration, error) {
	g, err := m.Int64ObservableGauge(name, metric.WithUnit("{message}"), metric.WithDescription(description))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := lag(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(g, n)
		return nil
	}, g)
}
