// Package chromiumtest renders a local HTML file in headless Chromium (Debian's
// package) and returns the DOM it built, or a screenshot: how tests check
// what a report shows a person, not just what its source says. Each call
// runs its own browser process with a private profile and no network.
package chromiumtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binaries are the names Chromium is installed under.
var Binaries = []string{"chromium", "chromium-browser", "google-chrome"}

// Find returns the browser's path, or an error saying how to install it.
func Find() (string, error) {
	for _, b := range Binaries {
		if p, err := exec.LookPath(b); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium: not found (apt-get install chromium)")
}

func run(ctx context.Context, file string, extra ...string) ([]byte, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "rampart-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir=" + profile}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+abs)...)
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		return nil, fmt.Errorf("chromium: %w: %s", err, stderr)
	}
	return out, nil
}

// DumpDOM loads file and returns the serialized DOM after it rendered.
func DumpDOM(ctx context.Context, file string) (string, error) {
	out, err := run(ctx, file, "--dump-dom")
	return string(out), err
}

// Screenshot loads file and writes a PNG of it to png.
func Screenshot(ctx context.Context, file, png string, width, height int) error {
	abs, err := filepath.Abs(png)
	if err != nil {
		return err
	}
	_, err = run(ctx, file, "--screenshot="+abs, fmt.Sprintf("--window-size=%d,%d", width, height))
	return err
}

// Require fails the test (under CI or RAMPART_REQUIRE_SERVERS) or skips it,
// saying why, when Chromium is missing.
func Require(t testing.TB) {
	t.Helper()
	if _, err := Find(); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
			t.Fatalf("Chromium required: %v", err)
		}
		t.Skipf("Chromium unavailable (set CI or RAMPART_REQUIRE_SERVERS to make this fatal): %v", err)
	}
}
