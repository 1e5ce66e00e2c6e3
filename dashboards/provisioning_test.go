package dashboards_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/alerting"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/expr"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-io/rampart/dashboards"
	"github.com/rampart-io/rampart/dashboards/build"
)

// chQuery is a grafana-clickhouse-datasource query in its SQL editor's
// form (src/types/sql.ts CHQuery). The foundation SDK ships no type for the
// plugin, so it is registered here and decoded strictly: a misspelt key
// fails.
type chQuery struct {
	RefID         string            `json:"refId,omitempty"`
	Datasource    map[string]string `json:"datasource"`
	EditorType    string            `json:"editorType"`
	RawSQL        string            `json:"rawSql"`
	Format        *int              `json:"format"`
	QueryType     string            `json:"queryType"`
	PluginVersion string            `json:"pluginVersion"`
	IntervalMs    int               `json:"intervalMs,omitempty"`
	MaxDataPoints int               `json:"maxDataPoints,omitempty"`
}

func (chQuery) ImplementsDataqueryVariant() {}
func (q chQuery) Equals(o variants.Dataquery) bool {
	p, ok := o.(chQuery)
	return ok && p.RawSQL == q.RawSQL && p.RefID == q.RefID
}
func (chQuery) DataqueryType() string { return build.ClickHouseType }
func (q chQuery) Validate() error {
	switch {
	case q.EditorType != "sql":
		return fmt.Errorf("editorType %q, want sql", q.EditorType)
	case q.RawSQL == "":
		return fmt.Errorf("empty rawSql")
	case q.Format == nil || (*q.Format != build.FormatTable && *q.Format != build.FormatTimeSeries):
		return fmt.Errorf("format %v", q.Format)
	case q.Datasource["uid"] != build.ClickHouseUID:
		return fmt.Errorf("datasource %v", q.Datasource)
	}
	return nil
}

func decodeCH(raw []byte) (variants.Dataquery, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var q chQuery
	if err := d.Decode(&q); err != nil {
		return nil, err
	}
	return q, q.Validate()
}

func init() {
	plugins.RegisterDefaultPlugins()
	cog.NewRuntime().RegisterDataqueryVariant(variants.DataqueryConfig{
		Identifier:                 build.ClickHouseType,
		DataqueryUnmarshaler:       decodeCH,
		StrictDataqueryUnmarshaler: decodeCH,
	})
}

// TestGolden: the committed provisioning is exactly what `make dashboards`
// writes, no file more or less.
func TestGolden(t *testing.T) {
	want, err := build.Files()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	err = fs.WalkDir(dashboards.Provisioning, "provisioning", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(dashboards.Provisioning, p)
		got[strings.TrimPrefix(p, "provisioning/")] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: missing; run make dashboards", name)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: differs from the generator's output; run make dashboards", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: not generated; remove it or add it to dashboards/build", name)
		}
	}
}

// provisioned reads the committed files.
func provisioned(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(dashboards.Provisioning, filepath.ToSlash(filepath.Join("provisioning", name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// datasourceUIDs parses the datasource file with the fields Grafana's
// provisioning documents, strictly, and returns uid -> type.
func datasourceUIDs(t *testing.T) map[string]string {
	t.Helper()
	var f struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name           string            `yaml:"name"`
			UID            string            `yaml:"uid"`
			Type           string            `yaml:"type"`
			Access         string            `yaml:"access"`
			URL            string            `yaml:"url"`
			Editable       bool              `yaml:"editable"`
			JSONData       map[string]any    `yaml:"jsonData"`
			SecureJSONData map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	d := yaml.NewDecoder(bytes.NewReader(provisioned(t, build.DatasourcesFile)))
	d.KnownFields(true)
	if err := d.Decode(&f); err != nil {
		t.Fatalf("datasources: %v", err)
	}
	if f.APIVersion != 1 {
		t.Fatalf("datasources: apiVersion %d", f.APIVersion)
	}
	// The settings grafana-clickhouse-datasource v4 reads (pkg/plugin/settings.go).
	chKeys := []string{"host", "port", "protocol", "secure", "username", "defaultDatabase"}
	out := map[string]string{}
	for _, ds := range f.Datasources {
		if _, dup := out[ds.UID]; dup || ds.UID == "" {
			t.Errorf("datasource uid %q missing or repeated", ds.UID)
		}
		out[ds.UID] = ds.Type
		if ds.Type == build.ClickHouseType {
			for k := range ds.JSONData {
				if !slices.Contains(chKeys, k) {
					t.Errorf("ClickHouse datasource: jsonData.%s is not a setting of the plugin", k)
				}
			}
			if ds.JSONData["protocol"] != "native" || ds.JSONData["defaultDatabase"] == nil || ds.SecureJSONData["password"] == "" {
				t.Errorf("ClickHouse datasource: want the native protocol, a default database and a password: %+v", ds)
			}
		}
	}
	return out
}

// parsedBoard is a dashboard as Grafana's types read it, with its file name.
// The SDK marks the classic JSON model deprecated in favour of its v2
// resource, but file provisioning reads the classic model (schemaVersion),
// which is what Rampart ships.
type parsedBoard struct {
	file string
	//lint:ignore SA1019 the classic model is what file provisioning loads
	d   dashboard.Dashboard
	raw []byte
}

func boards(t *testing.T) []parsedBoard {
	t.Helper()
	entries, err := fs.ReadDir(dashboards.Provisioning, "provisioning/"+build.DashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []parsedBoard
	for _, e := range entries {
		raw := provisioned(t, filepath.Join(build.DashboardsDir, e.Name()))
		//lint:ignore SA1019 the classic model is what file provisioning loads
		var d dashboard.Dashboard
		if err := strict(d.UnmarshalJSONStrict(raw)); err != nil {
			t.Errorf("%s: not a Grafana dashboard: %v", e.Name(), err)
			continue
		}
		// The SDK's PanelOrRowPanel returns its panel's empty error list as
		// an error before keeping the panel, so the dashboard comes back
		// without panels: decode each panel strictly on its own.
		var list struct {
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		d.Panels = nil
		for i, pr := range list.Panels {
			var p dashboard.Panel
			if err := strict(p.UnmarshalJSONStrict(pr)); err != nil {
				t.Errorf("%s: panel %d: not a Grafana panel: %v", e.Name(), i+1, err)
				continue
			}
			d.Panels = append(d.Panels, dashboard.PanelOrRowPanel{Panel: &p})
		}
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
		out = append(out, parsedBoard{e.Name(), d, raw})
	}
	if len(out) != 5 {
		t.Fatalf("%d dashboards, want 5", len(out))
	}
	return out
}

var (
	varRef  = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)`)
	linkVar = regexp.MustCompile(`var-(\w+)=`)
)

// TestDashboards: every dashboard parses into Grafana's own types, uids
// are unique and stable, every datasource and variable it names exists,
// and every drill-down lands on a dashboard with the variables it sets.
func TestDashboards(t *testing.T) {
	ds := datasourceUIDs(t)
	parsed := boards(t)
	byUID := map[string]parsedBoard{}
	for _, b := range parsed {
		uid := *b.d.Uid
		if _, dup := byUID[uid]; dup {
			t.Errorf("uid %s repeated", uid)
		}
		byUID[uid] = b
		if b.d.SchemaVersion != build.SchemaVersion {
			t.Errorf("%s: schemaVersion %d", b.file, b.d.SchemaVersion)
		}
	}
	// Stable: the uids are the constants links and rules use.
	for _, uid := range []string{build.ScopeUID, build.BoundaryUID, build.SessionUID, build.IntegrityUID, build.HealthUID} {
		if _, ok := byUID[uid]; !ok {
			t.Errorf("dashboard %s missing", uid)
		}
	}
	for _, b := range parsed {
		vars := map[string]bool{}
		if b.d.Templating.List != nil {
			for _, v := range b.d.Templating.List {
				vars[v.Name] = true
				if v.Datasource == nil || ds[*v.Datasource.Uid] == "" {
					t.Errorf("%s: variable %s: unknown datasource", b.file, v.Name)
				}
			}
		}
		checkRefs := func(where, text string) {
			for _, m := range varRef.FindAllStringSubmatch(text, -1) {
				name := m[1] + m[2] + m[3]
				if strings.HasPrefix(name, "__") {
					continue // macros and Grafana's own
				}
				if !vars[name] {
					t.Errorf("%s: %s: variable %s does not exist", b.file, where, name)
				}
			}
		}
		var raw struct {
			Panels []struct {
				Title       string `json:"title"`
				FieldConfig struct {
					Defaults struct {
						Links []struct{ URL string } `json:"links"`
					} `json:"defaults"`
				} `json:"fieldConfig"`
				Targets []map[string]any `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct {
					Name  string         `json:"name"`
					Query map[string]any `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b.raw, &raw); err != nil {
			t.Fatal(err)
		}
		for _, v := range raw.Templating.List {
			checkRefs("variable "+v.Name, fmt.Sprint(v.Query["rawSql"]))
		}
		if len(b.d.Panels) == 0 {
			t.Errorf("%s: no panels", b.file)
		}
		titles := map[string]bool{}
		for i, p := range b.d.Panels {
			if p.Panel == nil {
				t.Errorf("%s: a row where a panel was expected", b.file)
				continue
			}
			title := *p.Panel.Title
			if titles[title] {
				t.Errorf("%s: panel title %q repeated", b.file, title)
			}
			titles[title] = true
			if p.Panel.Datasource == nil || ds[*p.Panel.Datasource.Uid] == "" {
				t.Errorf("%s: %s: unknown datasource", b.file, title)
			}
			if len(raw.Panels[i].Targets) == 0 {
				t.Errorf("%s: %s: no query", b.file, title)
			}
			for _, tg := range raw.Panels[i].Targets {
				dsRef, _ := tg["datasource"].(map[string]any)
				if dsRef["type"] == build.PrometheusType {
					// Decoded on its own for the same SDK defect as panels.
					tj, _ := json.Marshal(tg)
					var q prometheus.Dataquery
					if err := strict(q.UnmarshalJSONStrict(tj)); err != nil {
						t.Errorf("%s: %s: not a Prometheus query: %v", b.file, title, err)
					} else if q.Expr == "" {
						t.Errorf("%s: %s: empty expr", b.file, title)
					}
				}
				if uid, _ := dsRef["uid"].(string); ds[uid] == "" {
					t.Errorf("%s: %s: target on unknown datasource %v", b.file, title, dsRef)
				}
				checkRefs(title, fmt.Sprint(tg["rawSql"], tg["expr"]))
			}
			for _, l := range raw.Panels[i].FieldConfig.Defaults.Links {
				checkLink(t, b.file+": "+title, l.URL, byUID)
			}
		}
	}
}

// checkLink: a drill-down names an existing dashboard and only variables
// that dashboard has.
func checkLink(t *testing.T, where, link string, byUID map[string]parsedBoard) {
	t.Helper()
	u, err := url.Parse(strings.NewReplacer("${", "", "}", "").Replace(link))
	if err != nil {
		t.Errorf("%s: link %q: %v", where, link, err)
		return
	}
	uid := strings.TrimPrefix(u.Path, "/d/")
	target, ok := byUID[uid]
	if !ok {
		t.Errorf("%s: link to unknown dashboard %q", where, uid)
		return
	}
	have := map[string]bool{}
	for _, v := range target.d.Templating.List {
		have[v.Name] = true
	}
	for _, m := range linkVar.FindAllStringSubmatch(link, -1) {
		if !have[m[1]] {
			t.Errorf("%s: link sets var-%s, which %s does not have", where, m[1], uid)
		}
	}
}

// ruleFile is Grafana's alerting file-provisioning format around the rules.
type ruleFile struct {
	APIVersion int `json:"apiVersion"`
	Groups     []struct {
		OrgID    int64             `json:"orgId"`
		Name     string            `json:"name"`
		Folder   string            `json:"folder"`
		Interval string            `json:"interval"`
		Rules    []json.RawMessage `json:"rules"`
	} `json:"groups"`
}

// rules parses the rule file: its frame strictly, each rule into Grafana's
// alerting.Rule (the API form, which carries the group's org, folder and
// name itself).
func rules(t *testing.T) []alerting.Rule {
	t.Helper()
	var f ruleFile
	var y any
	if err := yaml.Unmarshal(provisioned(t, build.AlertingFile), &y); err != nil {
		t.Fatalf("alert rules are not YAML: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(provisioned(t, build.AlertingFile)))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	if f.APIVersion != 1 || len(f.Groups) == 0 {
		t.Fatalf("alert rules: apiVersion %d, %d groups", f.APIVersion, len(f.Groups))
	}
	var out []alerting.Rule
	for _, g := range f.Groups {
		if _, err := time.ParseDuration(g.Interval); err != nil || g.Folder == "" || g.Name == "" {
			t.Errorf("group %q: folder %q, interval %q", g.Name, g.Folder, g.Interval)
		}
		for _, raw := range g.Rules {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			m["orgID"], m["folderUID"], m["ruleGroup"] = g.OrgID, g.Folder, g.Name
			full, _ := json.Marshal(m)
			var r alerting.Rule
			if err := strict(r.UnmarshalJSONStrict(full)); err != nil {
				t.Errorf("rule %v: not a Grafana alert rule: %#v", m["uid"], err)
				continue
			}
			// The SDK drops every model in strict decoding (the defect
			// panels have): decode each on its own, by what it is.
			var rawData struct {
				Data []struct {
					Model json.RawMessage `json:"model"`
				} `json:"data"`
			}
			if err := json.Unmarshal(raw, &rawData); err != nil {
				t.Fatal(err)
			}
			for i, q := range rawData.Data {
				model, err := decodeModel(*r.Data[i].DatasourceUid, q.Model)
				if err != nil {
					t.Errorf("rule %s: query %s: %v", *r.Uid, *r.Data[i].RefId, err)
				}
				r.Data[i].Model = model
			}
			if err := r.Validate(); err != nil {
				t.Errorf("rule %s: %v", *r.Uid, err)
			}
			out = append(out, r)
		}
	}
	return out
}

// TestAlertRules: rules parse into Grafana's types, uids are unique, every
// query names a provisioned datasource, the condition is one of the
// rule's queries, and each notification carries a dashboard link and a
// command to investigate.
func TestAlertRules(t *testing.T) {
	ds := datasourceUIDs(t)
	uids := map[string]bool{}
	for _, b := range build.Boards() {
		uids[b.UID] = true
	}
	rs := rules(t)
	if len(rs) != len(build.Rules()) {
		t.Fatalf("%d rules parsed, %d built", len(rs), len(build.Rules()))
	}
	seen := map[string]bool{}
	for _, r := range rs {
		uid := *r.Uid
		if seen[uid] {
			t.Errorf("rule uid %s repeated", uid)
		}
		seen[uid] = true
		refs := map[string]bool{}
		for _, q := range r.Data {
			refs[*q.RefId] = true
			if u := *q.DatasourceUid; u != "__expr__" && ds[u] == "" {
				t.Errorf("%s: query %s on unknown datasource %s", uid, *q.RefId, u)
			}
		}
		if !refs[r.Condition] {
			t.Errorf("%s: condition %s is none of its queries", uid, r.Condition)
		}
		if _, err := time.ParseDuration(r.For); err != nil {
			t.Errorf("%s: for %q: %v", uid, r.For, err)
		}
		link := r.Annotations["dashboard"]
		target := strings.TrimPrefix(strings.SplitN(link, "?", 2)[0], "/d/")
		if !uids[target] {
			t.Errorf("%s: dashboard annotation %q names no dashboard", uid, link)
		}
		if !strings.HasPrefix(r.Annotations["investigate"], "rampart ") && !strings.HasPrefix(r.Annotations["investigate"], "nats ") {
			t.Errorf("%s: investigate annotation %q is not a command", uid, r.Annotations["investigate"])
		}
		if r.Labels["source"] != "rampart" || r.Annotations["summary"] == "" {
			t.Errorf("%s: labels %v, annotations %v", uid, r.Labels, r.Annotations)
		}
	}
}

// TestAlertPanels: what the demo prints names real panels.
func TestAlertPanels(t *testing.T) {
	var b strings.Builder
	dashboards.PrintWhere(&b)
	out := b.String()
	if !strings.Contains(out, dashboards.Dir) {
		t.Errorf("no provisioning path in %q", out)
	}
	ps := dashboards.AlertPanels()
	if len(ps) == 0 {
		t.Fatal("no panel shows alerts")
	}
	for _, p := range ps {
		if !strings.Contains(out, p.Panel) {
			t.Errorf("%s missing from %q", p.Panel, out)
		}
	}
	if _, err := os.Stat(filepath.Join("provisioning", build.AlertingFile)); err != nil {
		t.Error(err)
	}
}

// decodeModel decodes an alert query's model strictly as the type its
// datasource takes.
func decodeModel(dsUID string, raw []byte) (variants.Dataquery, error) {
	switch dsUID {
	case build.ClickHouseUID:
		return decodeCH(raw)
	case build.PrometheusUID:
		var q prometheus.Dataquery
		if err := strict(q.UnmarshalJSONStrict(raw)); err != nil {
			return nil, err
		}
		if q.Expr == "" {
			return nil, fmt.Errorf("empty expr")
		}
		return q, nil
	case "__expr__":
		var kind struct{ Type string }
		if err := json.Unmarshal(raw, &kind); err != nil {
			return nil, err
		}
		switch kind.Type {
		case "reduce":
			var e expr.TypeReduce
			return nil, strict(e.UnmarshalJSONStrict(raw))
		case "threshold":
			var e expr.TypeThreshold
			if err := strict(e.UnmarshalJSONStrict(raw)); err != nil {
				return nil, err
			}
			if len(e.Conditions) != 1 {
				return nil, fmt.Errorf("threshold with %d conditions", len(e.Conditions))
			}
			return nil, nil
		}
		return nil, fmt.Errorf("expression type %q", kind.Type)
	}
	return nil, fmt.Errorf("unknown datasource %q", dsUID)
}

// strict unwraps the SDK's strict decoders, which return their error list
// as an error even when it is empty.
func strict(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}
