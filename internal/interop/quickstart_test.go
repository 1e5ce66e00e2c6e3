package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rampart-io/rampart/loadtest/workload"
	"github.com/rampart-io/rampart/testkit/chtest"
	"github.com/rampart-io/rampart/testkit/poll"
)

// TestQuickstart runs the README's quickstart as a user would — `rampart
// migrate`, then `rampart run` with deploy/quickstart/enforcer.yaml, only
// its upstream and identity provider set — in front of server-everything,
// and a standard client works through it.
func TestQuickstart(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "../..")
	upstream := everything(t)
	chAddr, _ := chtest.Server(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rampart")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd/rampart")).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	iss, err := workload.NewIssuer("https://idp.example.com", "rampart")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := iss.JWKS()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	// The quickstart's file with what its reader is told to set: the
	// upstream and the identity provider (a key file here, not a URL);
	// and a free port to listen on.
	src, err := os.ReadFile(filepath.Join(root, "deploy/quickstart/enforcer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	cfg := string(src)
	for old, repl := range map[string]string{
		"listen: 127.0.0.1:8080":                                    "listen: " + listen,
		"upstream: http://127.0.0.1:3001":                           "upstream: " + strings.TrimSuffix(upstream, "/mcp"),
		"  jwks_url: https://idp.example.com/.well-known/jwks.json": "  jwks_file: " + filepath.Join(dir, "jwks.json"),
		"policy_file: ../../enforcer/policy.example.yaml":           "policy_file: " + filepath.Join(root, "enforcer/policy.example.yaml"),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("deploy/quickstart/enforcer.yaml no longer has %q, which the README tells its reader about", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	cfgFile := filepath.Join(dir, "enforcer.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	if out, err := exec.Command(bin, "migrate", "-clickhouse", chAddr, "-database", "quickstart").CombinedOutput(); err != nil {
		t.Fatalf("rampart migrate: %v\n%s", err, out)
	}
	run := exec.Command(bin, "run", "-enforcer-config", cfgFile, "-clickhouse", chAddr, "-database", "quickstart",
		"-nats-listen", freeAddr(t), "-data-dir", filepath.Join(dir, "data"))
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		_ = run.Wait()
		if t.Failed() {
			t.Logf("rampart run:\n%s", out.String())
		}
	})
	poll.Until(t, 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
		if err != nil {
			return fmt.Errorf("rampart run not listening on %s: %w", listen, err)
		}
		return c.Close()
	})

	token, err := iss.Token(workload.Caller{Tenant: "acme", Principal: "user:alice", Actors: []string{"agent:planner"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := connect(ctx, t, "http://"+listen+"/mcp", token)
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Errorf("tools/list through the quickstart: %v", err)
	}
	var rpcErr *jsonrpc.Error
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get-env", Arguments: map[string]any{}}); !errors.As(err, &rpcErr) {
		t.Errorf("a tool the example policy does not name: %v", err)
	}
	if err := cs.Ping(ctx, nil); err != nil {
		t.Errorf("ping: %v", err)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr())
}
