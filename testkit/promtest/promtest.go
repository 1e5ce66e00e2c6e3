// Package promtest gives a test a real Prometheus (Debian's prometheus
// package) scraping the targets it names, in one call, stopped with the
// test. Tests query it as Grafana would, through its HTTP API.
//
// When the binary is missing, the test fails if $CI or
// $RAMPART_REQUIRE_SERVERS is set and is skipped, saying why, otherwise.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running Prometheus.
type Server struct {
	// URL is its HTTP API, http://127.0.0.1:port.
	URL string
	// Interval is the scrape interval.
	Interval time.Duration
}

// Run starts Prometheus scraping each target (host:port, path /metrics)
// every interval, with its data in a temporary directory.
func Run(t testing.TB, interval time.Duration, targets ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		unavailable(t, "prometheus not installed (apt-get install prometheus; scripts/deps.sh test does)")
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n  - job_name: rampart\n    static_configs:\n      - targets: [%s]\n",
		interval, interval, strings.Join(quoted, ", "))
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		unavailable(t, err.Error())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("prometheus:\n%s", b)
			}
		}
	})
	s := &Server{URL: "http://" + addr, Interval: interval}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(s.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Series is one element of an instant query's result.
type Series struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query runs an instant PromQL query now and returns its series.
func (s *Server) Query(ctx context.Context, expr string) ([]Series, error) {
	u := s.URL + "/api/v1/query?query=" + url.QueryEscape(expr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string   `json:"resultType"`
			Result     []Series `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("promtest: %s: %w", expr, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("promtest: %s: %s: %s", expr, out.ErrorType, out.Error)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("promtest: %s: result type %s, want vector", expr, out.Data.ResultType)
	}
	return out.Data.Result, nil
}

func unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
		t.Fatalf("Prometheus required under CI: %s", reason)
	}
	t.Skipf("Prometheus unavailable (set CI or RAMPART_REQUIRE_SERVERS to make this fatal): %s", reason)
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
