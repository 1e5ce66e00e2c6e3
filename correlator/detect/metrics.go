package detect

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metric names, per rule (attribute rampart.rule):
//   - rampart.detect.alerts: alerts fired.
//   - rampart.detect.groups_dropped: new groups refused at a bound
//     (attribute reason: rule_full, when the rule is full of other
//     tenants' groups).
//   - rampart.detect.groups_evicted: groups evicted to make room for a
//     new one of the same tenant (attribute reason: principal_full,
//     tenant_full or rule_full).
//   - rampart.detect.eval_errors: CEL evaluations that failed (a missing
//     map key, a wrong type, the cost limit), each counted as no match.
//   - rampart.detect.groups: groups tracked now (gauge).
const (
	metricAlerts     = "rampart.detect.alerts"
	metricDropped    = "rampart.detect.groups_dropped"
	metricEvicted    = "rampart.detect.groups_evicted"
	metricEvalErrors = "rampart.detect.eval_errors"
	metricGroups     = "rampart.detect.groups"
	attrRule         = "rampart.rule"
)

type metrics struct {
	alerts, dropped, evicted, evalErrors metric.Int64Counter
	reg                                  metric.Registration
	mu                                   sync.Mutex
	rules                                []*ruleState // read by the gauge callback
}

func newMetrics(m metric.Meter, _ *Engine) *metrics {
	if m == nil {
		m = noop.NewMeterProvider().Meter("")
	}
	x := &metrics{}
	// Instrument errors leave a no-op instrument in place: metrics are
	// never a reason not to detect.
	x.alerts, _ = m.Int64Counter(metricAlerts, metric.WithDescription("Alerts fired, per rule."))
	x.dropped, _ = m.Int64Counter(metricDropped, metric.WithDescription("New detection groups refused at a bound, per rule and reason."))
	x.evicted, _ = m.Int64Counter(metricEvicted, metric.WithDescription("Detection groups evicted to make room for a new one of the same tenant, per rule and reason."))
	x.evalErrors, _ = m.Int64Counter(metricEvalErrors, metric.WithDescription("Rule expressions that failed to evaluate (counted as no match), per rule."))
	gauge, err := m.Int64ObservableGauge(metricGroups, metric.WithDescription("Detection groups tracked, per rule."))
	if err == nil {
		x.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			x.mu.Lock()
			defer x.mu.Unlock()
			for _, s := range x.rules {
				o.ObserveInt64(gauge, s.tracked.Load(), metric.WithAttributes(attribute.String(attrRule, s.id)))
			}
			return nil
		}, gauge)
	}
	return x
}

func (x *metrics) setRules(rules []*ruleState) {
	x.mu.Lock()
	x.rules = rules
	x.mu.Unlock()
}

func (x *metrics) close() {
	if x.reg != nil {
		_ = x.reg.Unregister()
	}
}

func (x *metrics) ruleAttrs(id string) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String(attrRule, id)))
}

func (x *metrics) alerted(s *ruleState)   { x.alerts.Add(context.Background(), 1, s.attrs) }
func (x *metrics) evalError(s *ruleState) { x.evalErrors.Add(context.Background(), 1, s.attrs) }

func (x *metrics) groupDropped(s *ruleState, reason string) {
	x.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String(attrRule, s.id), attribute.String("reason", reason)))
}

func (x *metrics) groupEvicted(s *ruleState, reason string) {
	x.evicted.Add(context.Background(), 1, metric.WithAttributes(attribute.String(attrRule, s.id), attribute.String("reason", reason)))
}
