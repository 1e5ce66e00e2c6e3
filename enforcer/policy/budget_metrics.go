package policy

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument reports b's counters in use, per tenant, and the calls a full
// partition or table refused, to meters of mp. Unregister the returned
// registration when b is no longer used.
func (b *Budgets) Instrument(mp metric.MeterProvider) (metric.Registration, error) {
	m := mp.Meter("github.com/rampart-io/rampart/enforcer/policy")
	counters, err1 := m.Int64ObservableGauge("rampart.policy.budget.counters", metric.WithUnit("{counter}"),
		metric.WithDescription("Budget counters held, by tenant, expired ones not yet swept included"))
	refused, err2 := m.Int64ObservableCounter("rampart.policy.budget.refused", metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused with budget_table_full, by the limit that was reached (tenant or total)"))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	byTenant := metric.WithAttributes(attribute.String("limit", "tenant"))
	byTotal := metric.WithAttributes(attribute.String("limit", "total"))
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.Usage(func(tenant string, n int) {
			o.ObserveInt64(counters, int64(n), metric.WithAttributes(attribute.String("tenant", tenant)))
		})
		tenant, total := b.Refused()
		o.ObserveInt64(refused, tenant, byTenant)
		o.ObserveInt64(refused, total, byTotal)
		return nil
	}, counters, refused)
}
