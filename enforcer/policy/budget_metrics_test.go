package policy_test

import (
	"context"
	"maps"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rampart-io/rampart/enforcer/policy"
)

func TestBudgetsInstrument(t *testing.T) {
	budgets := policy.NewBudgets(policy.BudgetLimits{MaxPerTenant: 2, MaxTotal: 3})
	reader := sdkmetric.NewManualReader()
	reg, err := budgets.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Unregister() }()
	p := parseBudgeted(t, policy.WithBudgets(budgets))
	flood(p, "a", 3) // 2 counted, 1 refused by a's bound
	flood(p, "b", 2) // 1 counted, 1 refused by the total
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					v, _ := dp.Attributes.Value("tenant")
					got[m.Name+"/"+v.AsString()] = dp.Value
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					v, _ := dp.Attributes.Value("limit")
					got[m.Name+"/"+v.AsString()] = dp.Value
				}
			}
		}
	}
	want := map[string]int64{
		"rampart.policy.budget.counters/a": 2, "rampart.policy.budget.counters/b": 1,
		"rampart.policy.budget.refused/tenant": 1, "rampart.policy.budget.refused/total": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}
