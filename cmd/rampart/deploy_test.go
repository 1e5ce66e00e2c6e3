package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/policy"
)

// The deploy/ tree: the single-node units and the config files they and
// the Kubernetes chart read, checked against the real loaders and flag sets
// so a renamed field, flag or verb fails here and not on a host.
const (
	deployDir  = "../../deploy"
	unitDir    = deployDir + "/single-node/systemd"
	etcDir     = deployDir + "/single-node/etc/rampart"
	installEtc = "/etc/rampart/"
	binDir     = "/usr/local/bin/"
)

// loadConfigFile loads a config file of deploy/ with its component's loader,
// chosen by the file's name, and validates it.
func loadConfigFile(path string) error {
	switch filepath.Base(path) {
	case "enforcer.yaml":
		cfg, err := enforcer.LoadConfig(path)
		if err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		_, err = policy.Load(cfg.PolicyFile)
		return err
	case "collector.yaml":
		_, err := collectorConfig([]string{"-config", path})
		return err
	case "correlator.yaml":
		_, err := correlatorConfig([]string{"-config", path})
		return err
	case "policy.yaml":
		_, err := policy.Load(path)
		return err
	}
	return fmt.Errorf("no loader for %s: name it enforcer.yaml, collector.yaml, correlator.yaml or policy.yaml", path)
}

// TestDeployConfigsLoad: every component config under deploy/ loads with
// its component's strict loader, and the folders that hold nothing else
// hold nothing else.
func TestDeployConfigsLoad(t *testing.T) {
	configOnly := []string{"quickstart", "single-node/etc"}
	var n int
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(deployDir, path)
		if err == nil && d.IsDir() && rel == "kubernetes" {
			// Helm templates, rendered and loaded by deploy/kubernetes's tests.
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		known := slices.Contains([]string{"enforcer.yaml", "collector.yaml", "correlator.yaml", "policy.yaml"}, d.Name())
		inConfigDir := slices.ContainsFunc(configOnly, func(p string) bool { return strings.HasPrefix(rel, p+"/") })
		if !known && !inConfigDir {
			return nil // another tool's file (a chart, a cluster's configs)
		}
		n++
		t.Run(rel, func(t *testing.T) {
			if err := loadConfigFile(path); err != nil {
				t.Fatal(err)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("%d config files under %s, want the quickstart's and single-node's", n, deployDir)
	}
}

// unit is a parsed systemd unit file: each section's keys, values in order.
type unit struct {
	name     string
	sections map[string]map[string][]string
}

func (u unit) get(section, key string) []string { return u.sections[section][key] }

func (u unit) one(section, key string) string {
	v := u.get(section, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

var unitKey = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// parseUnit reads a unit file strictly: comments, [Section] headers of the
// unit's type, Key=Value lines; no continuation lines, quotes or
// specifiers, which the checks below would read differently from systemd.
func parseUnit(path string) (unit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return unit{}, err
	}
	u := unit{name: filepath.Base(path), sections: map[string]map[string][]string{}}
	allowed := map[string][]string{".service": {"Unit", "Service", "Install"}, ".timer": {"Unit", "Timer", "Install"}}[filepath.Ext(path)]
	if allowed == nil {
		return unit{}, fmt.Errorf("%s: not a .service or .timer", path)
	}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			if !slices.Contains(allowed, section) {
				return unit{}, fmt.Errorf("%s:%d: section [%s] in a %s", path, line, section, filepath.Ext(path))
			}
			if u.sections[section] != nil {
				return unit{}, fmt.Errorf("%s:%d: [%s] twice", path, line, section)
			}
			u.sections[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		switch {
		case section == "":
			return unit{}, fmt.Errorf("%s:%d: %q before any section", path, line, l)
		case !ok || !unitKey.MatchString(k):
			return unit{}, fmt.Errorf("%s:%d: %q is not Key=Value", path, line, l)
		case strings.HasSuffix(v, `\`) || strings.ContainsAny(v, `"'`) || strings.Contains(v, "%") || strings.Contains(v, "$"):
			return unit{}, fmt.Errorf("%s:%d: %s: continuation, quote, specifier or variable", path, line, k)
		}
		u.sections[section][k] = append(u.sections[section][k], v)
	}
	return u, sc.Err()
}

func units(t *testing.T) []unit {
	t.Helper()
	paths, _ := filepath.Glob(unitDir + "/*")
	if len(paths) == 0 {
		t.Fatalf("no units in %s", unitDir)
	}
	var us []unit
	for _, p := range paths {
		u, err := parseUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	return us
}

// The hardening every service carries; CapabilityBoundingSet empty: no
// unit binds a port below 1024.
var hardening = map[string]string{
	"DynamicUser":             "yes",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateMounts":           "yes",
	"PrivateDevices":          "yes",
	"NoNewPrivileges":         "yes",
	"CapabilityBoundingSet":   "",
	"AmbientCapabilities":     "",
	"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	"SystemCallFilter":        "@system-service",
	"SystemCallArchitectures": "native",
	"MemoryDenyWriteExecute":  "yes",
	"UMask":                   "0077",
}

// verbArgs runs a unit's ExecStart arguments through the real flag set and
// config loader of the verb it names, with /etc/rampart/ read from the
// repository's copy.
func verbArgs(bin string, args []string) error {
	for i, a := range args {
		if strings.HasPrefix(a, installEtc) {
			args[i] = filepath.Join(etcDir, strings.TrimPrefix(a, installEtc))
		}
	}
	if bin == "rampart-enforcer" {
		cfg, err := enforcer.ConfigFromArgs(bin, args)
		if err != nil {
			return err
		}
		_, err = policy.Load(cfg.PolicyFile)
		return err
	}
	if len(args) == 0 {
		return fmt.Errorf("no verb")
	}
	name, rest := args[0], args[1:]
	var err error
	switch name {
	case "run":
		cfg, err := runConfig(rest)
		if err != nil {
			return err
		}
		cfg.Enforcer.NATS.URL = "nats://embedded" // what pipeline.New sets
		if err := errors.Join(cfg.Enforcer.Validate(), cfg.Collector.Validate(), cfg.Correlator.Validate()); err != nil {
			return err
		}
		_, err = policy.Load(cfg.Enforcer.PolicyFile)
		return err
	case "collector":
		_, err = collectorConfig(rest)
	case "correlator":
		_, err = correlatorConfig(rest)
	case "migrate":
		_, err = migrateConfig(rest)
	case "verify":
		_, err = parseVerifyArgs(rest)
	default:
		if slices.ContainsFunc(verbs, func(v verb) bool { return v.name == name }) {
			return fmt.Errorf("verb %q has no unit check here: add it", name)
		}
		return fmt.Errorf("rampart has no verb %q", name)
	}
	return err
}

// TestSingleNodeUnits: each unit parses, starts a real verb with flags its
// flag set defines and files that load, carries the hardening, and names
// only credentials it loads and state it owns.
func TestSingleNodeUnits(t *testing.T) {
	metricsPorts := map[string]string{}
	for _, u := range units(t) {
		t.Run(u.name, func(t *testing.T) {
			if strings.HasSuffix(u.name, ".timer") {
				if svc := strings.TrimSuffix(u.name, ".timer") + ".service"; !fileExists(filepath.Join(unitDir, svc)) {
					t.Fatalf("timer for a missing %s", svc)
				}
				return
			}
			for k, want := range hardening {
				if got := u.get("Service", k); !slices.Contains(got, want) {
					t.Errorf("%s=%q, want %q among them", k, got, want)
				}
			}
			if u.one("Service", "MemoryMax") == "" {
				t.Error("no MemoryMax")
			}
			exec := strings.Fields(u.one("Service", "ExecStart"))
			if len(exec) == 0 || !strings.HasPrefix(exec[0], binDir) {
				t.Fatalf("ExecStart %q: not a binary in %s", exec, binDir)
			}
			bin := strings.TrimPrefix(exec[0], binDir)
			if bin != "rampart" && bin != "rampart-enforcer" {
				t.Fatalf("ExecStart runs %s", bin)
			}
			if err := verbArgs(bin, slices.Clone(exec[1:])); err != nil {
				t.Fatalf("ExecStart %q: %v", exec, err)
			}
			named := namedPaths(t, exec[1:])
			creds := map[string]bool{}
			for _, lc := range u.get("Service", "LoadCredential") {
				name, src, _ := strings.Cut(lc, ":")
				creds[name] = true
				if !strings.HasPrefix(src, "/etc/rampart/keys/") {
					t.Errorf("LoadCredential %s from %s, want /etc/rampart/keys/", name, src)
				}
			}
			for _, p := range named {
				if name, ok := strings.CutPrefix(p, "/run/credentials/"+u.name+"/"); ok {
					if !creds[name] {
						t.Errorf("%s is read but not in LoadCredential", p)
					}
					delete(creds, name)
				} else if strings.HasPrefix(p, "/run/credentials/") {
					t.Errorf("%s: another unit's credential", p)
				}
				if dir, ok := strings.CutPrefix(p, "/var/lib/"); ok {
					if state := u.one("Service", "StateDirectory"); state == "" || (dir != state && !strings.HasPrefix(dir, state+"/")) {
						t.Errorf("%s outside StateDirectory %q", p, state)
					}
				}
			}
			for name := range creds {
				t.Errorf("LoadCredential %s is loaded but never read", name)
			}
			if u.one("Service", "Type") != "oneshot" {
				var port string
				for _, e := range u.get("Service", "Environment") {
					if v, ok := strings.CutPrefix(e, "RAMPART_METRICS_LISTEN="); ok {
						port = v
					}
				}
				if !strings.HasPrefix(port, "127.0.0.1:") {
					t.Errorf("RAMPART_METRICS_LISTEN=%q: a long-running unit serves its probes and metrics on loopback", port)
				} else if other, dup := metricsPorts[port]; dup {
					t.Errorf("RAMPART_METRICS_LISTEN %s also %s's", port, other)
				}
				metricsPorts[port] = u.name
			}
		})
	}
}

// namedPaths are the absolute paths the unit's arguments and the config
// files they name hold, where credentials and state must be.
func namedPaths(t *testing.T, args []string) []string {
	t.Helper()
	abs := regexp.MustCompile(`/(?:run|var|etc)/[A-Za-z0-9_./@-]+`)
	var out []string
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			if !strings.HasPrefix(p, "/") {
				continue
			}
			out = append(out, p)
			if rel, ok := strings.CutPrefix(p, installEtc); ok && strings.HasSuffix(p, ".yaml") {
				data, err := os.ReadFile(filepath.Join(etcDir, rel))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(data), "\n") {
					line, _, _ = strings.Cut(line, "#")
					out = append(out, abs.FindAllString(line, -1)...)
				}
			}
		}
	}
	return out
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestSingleNodeUnitsVerify: systemd's own parser accepts every unit
// without a warning (an unknown or misspelt directive is one), and rates
// each service's exposure low. The binaries are replaced by this test's
// own, which systemd-analyze checks only for being executable.
func TestSingleNodeUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
			t.Fatalf("systemd-analyze: %v (apt-get install systemd)", err)
		}
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paths, _ := filepath.Glob(unitDir + "/*")
	var copies []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data = regexp.MustCompile(regexp.QuoteMeta(binDir)+`rampart(-enforcer)?\b`).ReplaceAll(data, []byte(self))
		c := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(c, data, 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, c)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, copies...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// systemd's scale is 0 (safe) to 10 (exposed), the threshold in tenths:
	// the units rate 1.2, the network and the host's root their only
	// openings.
	const maxExposure = "15"
	for _, c := range copies {
		if !strings.HasSuffix(c, ".service") {
			continue
		}
		out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", "--threshold="+maxExposure, c).CombinedOutput()
		if err != nil {
			last := out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:]
			t.Errorf("%s: exposure above %s/100: %s", filepath.Base(c), maxExposure, last)
		}
	}
}
