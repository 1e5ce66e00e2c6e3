package detect

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// readInt returns the value of an int metric's point whose attributes
// include want, summed over matching points.
func readInt(t *testing.T, r *sdkmetric.ManualReader, name string, want ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
		next:
			for _, p := range points {
				for _, kv := range want {
					if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
						continue next
					}
				}
				total += p.Value
				found = true
			}
		}
	}
	return total, found
}

// TestBoundsAreNeverSilent: refused groups, evaluation errors, alerts and
// tracked groups are all counted, per rule.
func TestBoundsAreNeverSilent(t *testing.T) {
	rs := load(t, map[string]string{
		"a.yaml": rule("pair", "match: effect == \"deny\"\ngroup_by: [session]\nevent_count: {window: 1h, gte: 2}\n"),
		"b.yaml": rule("args", "match: args.limit > 10\nevent_count: {window: 1h, gte: 1}\n"),
	})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e := NewEngine(rs, Options{MaxGroupsPerRule: 20, MaxGroupsPerTenant: 15, Meter: mp.Meter("test")})
	defer e.Close()
	for i := range 15 {
		feed(e, ev(time.Duration(i)*time.Millisecond, deny, tenant("flood"), session(fmt.Sprint(i)), subject(fmt.Sprint("user:", i))))
	}
	// Past its share the tenant's least recently used group gives way.
	exhausted := feed(e, ev(time.Second, deny, tenant("flood"), session("one too many")))
	for i := range 10 {
		exhausted = append(exhausted, feed(e, ev(2*time.Second, deny, tenant("other"), session(fmt.Sprint(i)), subject(fmt.Sprint("user:", i))))...)
	}
	// A tenant with no group to give way to a full rule is refused.
	exhausted = append(exhausted, feed(e, ev(2*time.Second, deny, tenant("third"), session("t")))...)
	pair := attribute.String(attrRule, "pair")
	if n, _ := readInt(t, reader, metricEvicted, pair, attribute.String("reason", "tenant_full")); n != 1 {
		t.Errorf("tenant_full evictions %d, want 1", n)
	}
	if n, _ := readInt(t, reader, metricEvicted, pair, attribute.String("reason", "rule_full")); n != 5 {
		t.Errorf("rule_full evictions %d, want 5 (the other tenant's own groups past 20 in all)", n)
	}
	if n, _ := readInt(t, reader, metricDropped, pair, attribute.String("reason", "rule_full")); n != 1 {
		t.Errorf("rule_full refusals %d, want 1 (the third tenant's)", n)
	}
	// One exhaustion alert per tenant and bound, each naming its tenant.
	var got []string
	for _, a := range exhausted {
		if a.Alert.RuleID == StateExhaustedRule {
			got = append(got, a.Tenant+"/"+a.Alert.Group[1].Value)
		}
	}
	if want := []string{"flood/tenant_full", "other/rule_full", "third/rule_full"}; !slices.Equal(got, want) {
		t.Errorf("exhaustion alerts %v, want %v", got, want)
	}
	if n, _ := readInt(t, reader, metricGroups, pair); n != 20 {
		t.Errorf("groups gauge %d, want 20", n)
	}
	feed(e, ev(3*time.Second, deny, tenant("flood"), session("2"), subject("user:2")))
	if n, _ := readInt(t, reader, metricAlerts, pair); n != 1 {
		t.Errorf("alerts %d, want 1", n)
	}
	if n, _ := readInt(t, reader, metricEvalErrors, attribute.String(attrRule, "args")); n == 0 {
		t.Error("evaluation errors of args.limit on events without args were not counted")
	}
	// A swap that drops a rule drops its gauge too.
	e.Swap(load(t, map[string]string{"b.yaml": rule("args", "match: args.limit > 10\nevent_count: {window: 1h, gte: 1}\n")}))
	if _, found := readInt(t, reader, metricGroups, pair); found {
		t.Error("a removed rule is still gauged")
	}
}
