package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	loadworkload "github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/natstest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// The chart's Rampart containers run here as processes: the binaries built
// from this tree, the arguments, environment and mounted files the chart
// renders, against a real JetStream and ClickHouse on loopback. What
// differs from a pod is only where: the mount point is a temporary
// directory, and the listeners (listen, RAMPART_METRICS_LISTEN) are free
// loopback ports instead of the pod's fixed ones.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds /rampart and /rampart-enforcer as the image holds them.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "rampart-deploy-bin-"); buildErr != nil {
			return
		}
		for out, pkg := range map[string]string{"rampart": "./cmd/rampart", "rampart-enforcer": "./enforcer/cmd/rampart-enforcer"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			cmd.Dir = "../.."
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// stack is the servers a release talks to, here.
type stack struct {
	nats     *natstest.Server
	issuer   *loadworkload.Issuer
	upstream string
	values   map[string]any
}

// newStack starts JetStream, ClickHouse, an identity provider's JWKS and
// an upstream on loopback, and the chart values that point a release at
// them.
func newStack(t testing.TB) *stack {
	t.Helper()
	ns := natstest.Run(t)
	chAddr, _ := chtest.Server(t)
	idp := httptest.NewServer(nil)
	t.Cleanup(idp.Close)
	iss, err := loadworkload.NewIssuer(idp.URL, "rampart")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := iss.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	idp.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`))
	}))
	t.Cleanup(backend.Close)
	return &stack{nats: ns, issuer: iss, upstream: backend.URL, values: map[string]any{
		"identity":   map[string]any{"issuer": idp.URL, "audience": "rampart", "jwksURL": idp.URL + "/jwks.json"},
		"enforcer":   map[string]any{"upstream": backend.URL, "checkpointKeySecret": "enforcer-checkpoint"},
		"correlator": map[string]any{"checkpointKeySecret": "correlator-checkpoint"},
		"gateway":    map[string]any{"enabled": true, "secretName": "gateway-secret"},
		"clickhouse": map[string]any{"addr": chAddr, "database": fmt.Sprintf("rampart_deploy_%d_%d", os.Getpid(), time.Now().UnixNano())},
		// One server here; the chart's default is a three-server cluster.
		"nats": map[string]any{"streamReplicas": 1},
	}}
}

// process is one Rampart container of the release, running.
type process struct {
	name   string // workload/container
	cmd    *exec.Cmd
	admin  string // host:port of RAMPART_METRICS_LISTEN
	listen string // the enforcer's listener, "" for others
	log    *lockedBuffer
	done   chan struct{} // closed once it exited
}

type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// start runs every Rampart container of r and waits until each answers
// its readiness probe on the path the chart probes.
func (s *stack) start(t testing.TB, r rendered) []*process {
	t.Helper()
	bins := binaries(t)
	var procs []*process
	for _, w := range r.workloads() {
		for _, c := range w.pod.Spec.Containers {
			if !isRampart(c) {
				continue
			}
			p := s.run(t, r, w, c, bins)
			if !w.job {
				procs = append(procs, p)
				continue
			}
			// As Helm runs hooks: to completion before the rest.
			select {
			case <-p.done:
			case <-time.After(5 * time.Minute):
				t.Fatalf("%s still running: %s", p.name, p.log)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("%s exited %d: %s", p.name, code, p.log)
			}
		}
	}
	for _, p := range procs {
		p := p
		poll.Until(t, 90*time.Second, func() error {
			select {
			case <-p.done:
				t.Fatalf("%s exited: %s", p.name, p.log)
			default:
			}
			return probe(p, p.readinessPath(r))
		})
	}
	return procs
}

func (p *process) readinessPath(r rendered) string {
	for _, w := range r.workloads() {
		for _, c := range w.pod.Spec.Containers {
			if w.name+"/"+c.Name == p.name {
				return c.ReadinessProbe.HTTPGet.Path
			}
		}
	}
	return ""
}

func probe(p *process, path string) error {
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return fmt.Errorf("%s %s: %v", p.name, path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d", p.name, path, resp.StatusCode)
	}
	return nil
}

func (s *stack) run(t testing.TB, r rendered, w workload, c corev1.Container, bins string) *process {
	t.Helper()
	root := t.TempDir()
	mount := func(p string) string { return filepath.Join(root, p) }
	s.mountVolumes(t, r, w, c, mount)
	args := append([]string(nil), c.Args[1:]...)
	for i, a := range args {
		if strings.HasPrefix(a, "/") {
			args[i] = mount(a)
		}
	}
	p := &process{name: w.name + "/" + c.Name, admin: freeAddr(t), log: &lockedBuffer{}, done: make(chan struct{})}
	if c.Args[0] == "/rampart-enforcer" {
		p.listen = freeAddr(t)
		args = append(args, "-listen", p.listen)
	}
	cmd := exec.Command(filepath.Join(bins, strings.TrimPrefix(c.Args[0], "/")), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for _, e := range c.Env {
		v := e.Value
		switch e.Name {
		case "RAMPART_NATS_URL":
			v = s.nats.URL()
		case "RAMPART_METRICS_LISTEN":
			v = p.admin
		}
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s:\n%s", p.name, p.log)
		}
	})
	return p
}

// mountVolumes writes what c's volume mounts hold under mount: the
// ConfigMaps and Secrets the chart renders, with their /etc/rampart/ paths
// made the temporary root's, and the user's Secrets (gateway secret,
// checkpoint keys) made here.
func (s *stack) mountVolumes(t testing.TB, r rendered, w workload, c corev1.Container, mount func(string) string) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range w.pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	rewrite := func(s string) string { return strings.ReplaceAll(s, "/etc/rampart/", mount("/etc/rampart")+"/") }
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		files := map[string]string{}
		switch {
		case v.ConfigMap != nil:
			for _, i := range v.ConfigMap.Items {
				files[i.Path] = r.configMaps[v.ConfigMap.Name].Data[i.Key]
			}
		case v.Secret != nil && r.secrets[v.Secret.SecretName] != nil:
			for _, i := range v.Secret.Items {
				files[i.Path] = r.secrets[v.Secret.SecretName].StringData[i.Key]
			}
		case v.Secret != nil && strings.HasSuffix(v.Secret.SecretName, "-checkpoint"):
			files["key.pem"] = checkpointKey(t)
		case v.Secret != nil && v.Secret.SecretName == "gateway-secret":
			files["secret"] = "a-gateway-secret\n"
		default:
			t.Fatalf("%s: volume %s: nothing to mount here", w.name, m.Name)
		}
		for path, body := range files {
			dst := filepath.Join(mount(m.MountPath), path)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, []byte(rewrite(body)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func checkpointKey(t testing.TB) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestChartProbesServed: every Rampart container the chart renders,
// started as rendered, answers the liveness and readiness paths its probes
// name, and the admin port serves /metrics beside them; a path the chart
// does not name is not answered.
func TestChartProbesServed(t *testing.T) {
	s := newStack(t)
	r := render(t, s.values)
	procs := s.start(t, r)
	if len(procs) != 4 {
		t.Fatalf("%d Rampart containers, want the enforcer, the gateway's sidecar, the collector and the correlator", len(procs))
	}
	for _, p := range procs {
		for _, w := range r.workloads() {
			for _, c := range w.pod.Spec.Containers {
				if w.name+"/"+c.Name != p.name {
					continue
				}
				for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
					if pr == nil {
						continue
					}
					if err := probe(p, pr.HTTPGet.Path); err != nil {
						t.Error(err)
					}
				}
			}
		}
		if err := probe(p, "/metrics"); err != nil {
			t.Error(err)
		}
		if err := probe(p, "/ready"); err == nil || !strings.HasSuffix(err.Error(), "404") {
			t.Errorf("%s: an unnamed path answered: %v", p.name, err)
		}
	}
	// The enforcer Deployment, started from the chart, decides and records.
	for _, p := range procs {
		if p.listen == "" || !strings.HasSuffix(p.name, "-enforcer/enforcer") {
			continue
		}
		tok := s.token(t)
		status := call(t, "http://"+p.listen, tok)
		if status != http.StatusOK {
			t.Errorf("%s: an allowed call got %d", p.name, status)
		}
	}
}

func (s *stack) token(t testing.TB) string {
	t.Helper()
	tok, err := s.issuer.Token(loadworkload.Caller{Tenant: "acme", Principal: "user:alice@acme.example",
		Actors: []string{"agent:planner"}, Session: "deploy-sess-1", Task: "deploy-task-1"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var callBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"quarterly revenue by region"}}}`)

func call(t testing.TB, url, token string) int {
	t.Helper()
	status, err := post(context.Background(), http.DefaultClient, url, token)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func post(ctx context.Context, c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(callBody))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, nil
}

// peakRSS is the process's VmHWM in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for %d", pid)
}
