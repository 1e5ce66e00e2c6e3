package natscluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// module is the nats-server module whose main package is the server.
const module = "github.com/nats-io/nats-server/v2"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary is a nats-server executable built from the version of the module
// this test binary links (the embedded servers' version too), cached in
// the temporary directory by that version, so a run builds it at most
// once and a module upgrade builds it anew.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("natscluster: %v", buildErr)
	}
	return binPath
}

func build() (string, error) {
	version, err := moduleVersion()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "rampart-nats-server", version)
	bin := filepath.Join(dir, "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Installed beside its final name and renamed, so a concurrent run
	// never sees half a binary. Outside any module, the server builds with
	// its own go.mod, as its release does.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", module+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", module, version, err, out)
	}
	return bin, os.Rename(filepath.Join(tmp, "nats-server"), bin)
}

// moduleVersion is the nats-server/v2 version in this binary's build, or,
// when it links none, the one the module (or workspace) of the test's
// directory requires.
func moduleVersion() (string, error) {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == module {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version, nil
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}
