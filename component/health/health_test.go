package health_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/rampart-io/rampart/component/health"
)

func get(t *testing.T, mux *http.ServeMux, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var body struct{ Status string }
	if rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, rec.Body, err)
		}
	}
	return rec.Code, body.Status
}

// The readiness probe answers 503 until the component started, 200 while
// it runs, and 503 for good once the process is stopping: a restart of a
// stopping process never reads as ready again.
func TestProbeLifecycle(t *testing.T) {
	p := health.NewProbe()
	mux := http.NewServeMux()
	p.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	p.StopWhenDone(ctx)

	steps := []struct {
		name       string
		do         func()
		live, read int
		status     string
	}{
		{"starting", func() {}, 200, 503, health.StatusStarting},
		{"ready", p.Ready, 200, 200, health.StatusReady},
		{"stopping on ctx end", func() {
			cancel()
			// AfterFunc runs in its own goroutine: wait for it, not for a time.
			for p.Status() != health.StatusStopping {
				runtime.Gosched()
			}
		}, 200, 503, health.StatusStopping},
		{"ready after stopping stays stopping", p.Ready, 200, 503, health.StatusStopping},
	}
	for _, s := range steps {
		s.do()
		if code, _ := get(t, mux, "GET", health.LivePath); code != s.live {
			t.Errorf("%s: %s = %d, want %d", s.name, health.LivePath, code, s.live)
		}
		code, status := get(t, mux, "GET", health.ReadyPath)
		if code != s.read || status != s.status {
			t.Errorf("%s: %s = %d %q, want %d %q", s.name, health.ReadyPath, code, status, s.read, s.status)
		}
	}
	// A probe is a GET; anything else is not one.
	if code, _ := get(t, mux, "POST", health.ReadyPath); code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s = %d, want 405", health.ReadyPath, code)
	}
}

// A component run without probes (tests, the demo) calls a nil probe.
func TestNilProbeIgnoresCalls(t *testing.T) {
	p := health.FromContext(context.Background())
	if p != nil {
		t.Fatal("a bare context carries a probe")
	}
	p.Ready()
	p.Stopping()
	p.StopWhenDone(context.Background())
	if p.Status() != health.StatusStarting {
		t.Fatal(p.Status())
	}
	q := health.NewProbe()
	if health.FromContext(health.NewContext(context.Background(), q)) != q {
		t.Fatal("probe not carried")
	}
}
