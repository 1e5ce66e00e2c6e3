package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rampart-io/rampart/collector"
	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/component/health"
	"github.com/rampart-io/rampart/component/memlimit"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/policy"
)

const chartDir = "rampart"

// rendered is one release of the chart, each object decoded into its
// Kubernetes type.
type rendered struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	jobs         []*batchv1.Job // hooks, run before the rest
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
}

// workload is a Deployment's or StatefulSet's name and pod template.
type workload struct {
	kind, name string
	pod        corev1.PodTemplateSpec
	claims     []string // a StatefulSet's volumeClaimTemplates
	job        bool     // runs to completion: no probes, no PDB
}

// workloads are the release's pods: its Jobs first, as Helm runs them.
func (r rendered) workloads() []workload {
	var w []workload
	for _, j := range r.jobs {
		w = append(w, workload{kind: "Job", name: j.Name, pod: j.Spec.Template, job: true})
	}
	for _, d := range r.deployments {
		w = append(w, workload{kind: "Deployment", name: d.Name, pod: d.Spec.Template})
	}
	for _, s := range r.statefulSets {
		var claims []string
		for _, c := range s.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		w = append(w, workload{kind: "StatefulSet", name: s.Name, pod: s.Spec.Template, claims: claims})
	}
	return w
}

// render renders the chart with values over its defaults, as `helm
// template` would, and strictly decodes every object: a field its type
// lacks, a duplicate key or a kind the chart is not expected to make fails.
func render(t testing.TB, values map[string]any) rendered {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "rampart", Namespace: "rampart", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(files[name])))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			if err := r.add(doc); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
		}
	}
	return r
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func (r *rendered) add(doc []byte) error {
	var meta struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	strict := func(v any) error { return yaml.UnmarshalStrict(doc, v) }
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		r.deployments = append(r.deployments, &o)
		return strict(&o)
	case "apps/v1 StatefulSet":
		var o appsv1.StatefulSet
		r.statefulSets = append(r.statefulSets, &o)
		return strict(&o)
	case "batch/v1 Job":
		var o batchv1.Job
		r.jobs = append(r.jobs, &o)
		return strict(&o)
	case "v1 Service":
		var o corev1.Service
		r.services = append(r.services, &o)
		return strict(&o)
	case "v1 ConfigMap":
		var o corev1.ConfigMap
		err := strict(&o)
		r.configMaps[o.Name] = &o
		return err
	case "v1 Secret":
		var o corev1.Secret
		err := strict(&o)
		r.secrets[o.Name] = &o
		return err
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		r.pdbs = append(r.pdbs, &o)
		return strict(&o)
	case "networking.k8s.io/v1 NetworkPolicy":
		var o networkingv1.NetworkPolicy
		r.policies = append(r.policies, &o)
		return strict(&o)
	}
	return fmt.Errorf("unexpected object %s %s", meta.APIVersion, meta.Kind)
}

// The releases the checks run on: the defaults, and each option that
// changes which objects or peers are rendered.
var releases = map[string]map[string]any{
	"defaults": nil,
	"gateway sidecar": {
		"gateway": map[string]any{"enabled": true, "secretName": "gateway-secret"},
	},
	"external NATS with keys and scrapes": {
		"nats": map[string]any{"enabled": false, "url": "nats://nats.messaging:4222", "streamReplicas": 3,
			"egress": map[string]any{"to": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "messaging"}}}}}},
		"enforcer":    map[string]any{"checkpointKeySecret": "enforcer-checkpoint"},
		"correlator":  map[string]any{"checkpointKeySecret": "correlator-checkpoint"},
		"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}},
	},
}

// TestChartLints: helm lint's rules on each release.
func TestChartLints(t *testing.T) {
	for name, values := range releases {
		t.Run(name, func(t *testing.T) {
			l := lint.All(chartDir, values, "rampart", false)
			for _, m := range l.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestChartInvariants: every container is probed, bounded and unprivileged;
// every workload has a PodDisruptionBudget and a NetworkPolicy selecting
// its pods, and what each policy lets in and out is exactly what the
// component needs.
func TestChartInvariants(t *testing.T) {
	for name, values := range releases {
		t.Run(name, func(t *testing.T) {
			r := render(t, values)
			if len(r.workloads()) < 3 {
				t.Fatalf("%d workloads", len(r.workloads()))
			}
			for _, w := range r.workloads() {
				checkPod(t, r, w)
				checkSelected(t, r, w)
			}
		})
	}
}

func checkPod(t *testing.T, r rendered, w workload) {
	t.Helper()
	spec := w.pod.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", w.name, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it never uses", w.name)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		checkVolumeSource(t, r, w.name, v)
	}
	for _, c := range w.claims {
		volumes[c] = corev1.Volume{Name: c}
	}
	for _, c := range spec.Containers {
		where := w.name + "/" + c.Name
		if !w.job && (c.LivenessProbe == nil || c.ReadinessProbe == nil) {
			t.Errorf("%s: liveness %v readiness %v: both probes required", where, c.LivenessProbe, c.ReadinessProbe)
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("%s: resources %+v: cpu and memory requests and a memory limit required", where, c.Resources)
		} else if lim.Memory().Cmp(*req.Memory()) < 0 {
			t.Errorf("%s: memory limit below its request", where)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", where)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
			sc.Privileged != nil && *sc.Privileged,
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: securityContext %+v: read-only root, no escalation, every capability dropped", where, sc)
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("%s: mounts %s, which the pod lacks", where, m.Name)
			}
		}
		if isRampart(c) && !w.job {
			checkAdminProbes(t, where, c)
		}
	}
}

func isRampart(c corev1.Container) bool {
	return len(c.Args) > 0 && (c.Args[0] == "/rampart" || c.Args[0] == "/rampart-enforcer")
}

// checkAdminProbes: a Rampart container's probes are package health's
// paths on the port its RAMPART_METRICS_LISTEN serves.
func checkAdminProbes(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	listen := env(c, "RAMPART_METRICS_LISTEN")
	var admin int32
	for _, p := range c.Ports {
		if p.Name == "admin" {
			admin = p.ContainerPort
		}
	}
	if admin == 0 || listen != ":"+strconv.Itoa(int(admin)) {
		t.Errorf("%s: admin port %d, RAMPART_METRICS_LISTEN %q: the probes' port must be the one served", where, admin, listen)
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: health.LivePath, c.ReadinessProbe: health.ReadyPath} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s: probe %+v, want GET %s on port admin", where, probe, want)
		}
	}
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkVolumeSource: a ConfigMap or Secret the chart renders exists with
// the keys the volume projects; one it does not render is the user's.
func checkVolumeSource(t *testing.T, r rendered, where string, v corev1.Volume) {
	t.Helper()
	var keys []string
	var have map[string]bool
	switch {
	case v.ConfigMap != nil:
		cm, ok := r.configMaps[v.ConfigMap.Name]
		if !ok {
			t.Errorf("%s: volume %s: no ConfigMap %s", where, v.Name, v.ConfigMap.Name)
			return
		}
		have = map[string]bool{}
		for k := range cm.Data {
			have[k] = true
		}
		for _, i := range v.ConfigMap.Items {
			keys = append(keys, i.Key)
		}
	case v.Secret != nil:
		s, ok := r.secrets[v.Secret.SecretName]
		if !ok {
			return // the user's: a key or the gateway secret
		}
		have = map[string]bool{}
		for k := range s.StringData {
			have[k] = true
		}
		for _, i := range v.Secret.Items {
			keys = append(keys, i.Key)
		}
	}
	for _, k := range keys {
		if !have[k] {
			t.Errorf("%s: volume %s projects %s, which is not there", where, v.Name, k)
		}
	}
}

// The ports each component may reach and be reached on; 53 is DNS, the
// admin port is in only with metricsFrom.
var wantPorts = map[string]struct{ in, out []int }{
	"enforcer":   {in: []int{8080}, out: []int{53, 443, 3001, 4222}},
	"gateway":    {in: []int{8080}, out: []int{53, 443, 3001, 4222}},
	"collector":  {in: nil, out: []int{53, 4222, 9000}},
	"correlator": {in: nil, out: []int{53, 4222, 9000}},
	"nats":       {in: []int{4222, 6222}, out: []int{53, 6222}},
	"migrate":    {in: nil, out: []int{53, 9000}},
}

func checkSelected(t *testing.T, r rendered, w workload) {
	t.Helper()
	podLabels := labels.Set(w.pod.Labels)
	var pdbs, pols int
	for _, p := range r.pdbs {
		if labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(podLabels) {
			pdbs++
			if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
				t.Errorf("%s: PDB %s bounds nothing", w.name, p.Name)
			}
		}
	}
	component := w.pod.Labels["app.kubernetes.io/component"]
	for _, p := range r.policies {
		if !labels.SelectorFromSet(p.Spec.PodSelector.MatchLabels).Matches(podLabels) {
			continue
		}
		pols++
		if !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("%s: NetworkPolicy %s types %v: both directions denied but for what it lists", w.name, p.Name, p.Spec.PolicyTypes)
		}
		want, ok := wantPorts[component]
		if !ok {
			t.Errorf("%s: component %q has no expected ports", w.name, component)
			continue
		}
		var in, out []int
		for _, rule := range p.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("%s: an ingress rule with no ports allows every port", w.name)
			}
			for _, port := range rule.Ports {
				if n := port.Port.IntValue(); !(n == 9464 && len(rule.From) > 0) {
					in = append(in, n)
				}
			}
		}
		for _, rule := range p.Spec.Egress {
			if len(rule.Ports) == 0 {
				t.Errorf("%s: an egress rule with no ports allows every port", w.name)
			}
			if len(rule.To) == 0 {
				t.Errorf("%s: an egress rule to ports %v with no peers allows every address", w.name, rule.Ports)
			}
			for _, port := range rule.Ports {
				out = append(out, port.Port.IntValue())
			}
		}
		for _, rule := range p.Spec.Ingress {
			if len(rule.From) == 0 {
				t.Errorf("%s: an ingress rule from no peers allows everyone", w.name)
			}
		}
		if got := uniq(in); !slices.Equal(got, want.in) {
			t.Errorf("%s: ingress ports %v, want %v", w.name, got, want.in)
		}
		if got := uniq(out); !slices.Equal(got, want.out) {
			t.Errorf("%s: egress ports %v, want %v", w.name, got, want.out)
		}
	}
	if w.job {
		pdbs++ // nothing to disrupt
	}
	if pdbs != 1 || pols != 1 {
		t.Errorf("%s %s: %d PodDisruptionBudgets and %d NetworkPolicies select its pods, want one each", w.kind, w.name, pdbs, pols)
	}
}

func uniq(v []int) []int {
	sort.Ints(v)
	return slices.Compact(v)
}

// TestChartConfigsLoad: the component configs the chart renders load with
// the components' strict loaders and validate, read from where the pods
// mount them.
func TestChartConfigsLoad(t *testing.T) {
	for name, values := range releases {
		t.Run(name, func(t *testing.T) {
			r := render(t, values)
			dir := t.TempDir()
			files := map[string]string{}
			for _, cm := range r.configMaps {
				maps.Copy(files, cm.Data)
			}
			for _, s := range r.secrets {
				maps.Copy(files, s.StringData)
			}
			for _, f := range []string{"enforcer.yaml", "sidecar.enforcer.yaml", "policy.yaml", "collector.yaml", "correlator.yaml"} {
				body, ok := files[f]
				if !ok {
					t.Fatalf("no %s rendered", f)
				}
				// Paths under the pods' mount point are read from here.
				body = strings.ReplaceAll(body, "/etc/rampart/", dir+"/")
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var enforcerLimit memlimit.MiB
			for _, f := range []string{"enforcer.yaml", "sidecar.enforcer.yaml"} {
				cfg, err := enforcer.LoadConfig(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				enforcerLimit = max(enforcerLimit, cfg.MemoryLimitMiB)
				cfg.NATS.URL = "nats://from-env:4222" // RAMPART_NATS_URL in the pod
				if err := cfg.Validate(); err != nil {
					t.Errorf("%s: %v", f, err)
				}
				if _, err := policy.Load(cfg.PolicyFile); err != nil {
					t.Errorf("%s: policy: %v", f, err)
				}
			}
			col := collector.Defaults()
			if err := configfile.Load(filepath.Join(dir, "collector.yaml"), &col); err != nil {
				t.Fatal(err)
			}
			if err := col.Validate(); err != nil {
				t.Error(err)
			}
			checkMemoryLimit(t, r, "enforcer", enforcerLimit)
			checkMemoryLimit(t, r, "collector", col.MemoryLimitMiB)
			cor := correlator.Defaults()
			if err := configfile.Load(filepath.Join(dir, "correlator.yaml"), &cor); err != nil {
				t.Fatal(err)
			}
			if err := cor.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// checkMemoryLimit: a component's soft memory limit leaves its container
// room for what the Go heap does not hold (its RSS runs some 30 MiB over
// the limit, BENCHMARKS.md), so the runtime collects before the kernel
// kills it.
func checkMemoryLimit(t *testing.T, r rendered, container string, soft memlimit.MiB) {
	t.Helper()
	if soft <= 0 {
		t.Errorf("%s: no soft memory limit (%d)", container, soft)
		return
	}
	const headroom = 30 << 20
	seen := 0
	for _, w := range r.workloads() {
		for _, c := range w.pod.Spec.Containers {
			if c.Name != container {
				continue
			}
			seen++
			if lim := c.Resources.Limits.Memory().Value(); lim < int64(soft)<<20+headroom {
				t.Errorf("%s/%s: memory limit %d MiB, soft limit %d MiB: under 30 MiB between them", w.name, c.Name, lim>>20, soft)
			}
		}
	}
	if seen == 0 {
		t.Errorf("no %s container rendered", container)
	}
}
