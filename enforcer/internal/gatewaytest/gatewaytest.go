// Package gatewaytest runs real gateways — nginx (auth_request) and Caddy
// (forward_auth) — in front of an enforcer's forward-auth endpoint and a
// backend, for end-to-end tests. Each gateway gets its config, pid file,
// logs and temp dirs in t.TempDir(), listens on a free loopback port, and
// is stopped when the test ends. A missing binary fails the test when CI or
// RAMPART_REQUIRE_SERVERS is set, and skips it otherwise.
package gatewaytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Options say what a gateway fronts.
type Options struct {
	// Enforcer is the host:port of the enforcer's HTTP listener.
	Enforcer string
	// AuthPath is its forward_auth.path. Default "/_rampart/auth".
	AuthPath string
	// Backend is the host:port allowed requests go to.
	Backend string
	// Secret is the forward_auth secret the gateway sends.
	Secret string
}

// Nginx starts nginx with auth_request and returns its base URL.
func Nginx(t testing.TB, o Options) string {
	t.Helper()
	bin := lookPath(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	port := freePort(t)
	conf := render(t, nginxConf, o, dir, port)
	write(t, filepath.Join(dir, "nginx.conf"), conf)
	start(t, dir, port, filepath.Join(dir, "error.log"), nil,
		bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// Caddy starts caddy with forward_auth and returns its base URL.
func Caddy(t testing.TB, o Options) string {
	t.Helper()
	bin := lookPath(t, "caddy", "/usr/bin/caddy")
	dir := t.TempDir()
	port := freePort(t)
	write(t, filepath.Join(dir, "Caddyfile"), render(t, caddyfile, o, dir, port))
	// Caddy keeps state under HOME and XDG dirs: all inside the test's dir.
	env := []string{"RAMPART_GATEWAY_SECRET=" + o.Secret, "HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	start(t, dir, port, "", env, bin, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// NginxConf and Caddyfile are the configs the tests run, the same as the
// snippets documented for operators, plus the test-only paths.
const nginxConf = `{{if .Root}}user root;{{end}}
worker_processes 1;
error_log {{.Dir}}/error.log warn;
pid {{.Dir}}/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
    server {
        listen 127.0.0.1:{{.Port}};
        location = {{.AuthPath}} {
            internal;
            proxy_pass http://{{.Enforcer}}{{.AuthPath}};
            # auth_request never sends the body: say so, rather than
            # announce a body that does not come.
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Host $host;
            proxy_set_header X-Rampart-Gateway-Secret "{{.Secret}}";
        }
        location / {
            auth_request {{.AuthPath}};
            auth_request_set $rampart_request_id $upstream_http_x_rampart_request_id;
            auth_request_set $rampart_tenant $upstream_http_x_rampart_tenant;
            auth_request_set $rampart_subject $upstream_http_x_rampart_subject;
            proxy_set_header X-Rampart-Request-Id $rampart_request_id;
            proxy_set_header X-Rampart-Tenant $rampart_tenant;
            proxy_set_header X-Rampart-Subject $rampart_subject;
            add_header X-Rampart-Request-Id $rampart_request_id always;
            proxy_pass http://{{.Backend}};
        }
    }
}
`

const caddyfile = `{
	admin off
	auto_https off
	storage file_system {{.Dir}}/data
}
http://127.0.0.1:{{.Port}} {
	forward_auth {{.Enforcer}} {
		uri {{.AuthPath}}
		header_up X-Rampart-Gateway-Secret {env.RAMPART_GATEWAY_SECRET}
		copy_headers X-Rampart-Request-Id X-Rampart-Tenant X-Rampart-Subject
	}
	reverse_proxy {{.Backend}}
}
`

func render(t testing.TB, text string, o Options, dir string, port int) string {
	t.Helper()
	if o.AuthPath == "" {
		o.AuthPath = "/_rampart/auth"
	}
	var b bytes.Buffer
	err := template.Must(template.New("").Parse(text)).Execute(&b, map[string]any{
		"Dir": dir, "Port": port, "Enforcer": o.Enforcer, "Backend": o.Backend, "AuthPath": o.AuthPath, "Secret": o.Secret,
		"Root": os.Geteuid() == 0, // nginx run by root would switch workers to nobody, who cannot use dir
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// lookPath finds a gateway binary, or fails or skips the test.
func lookPath(t testing.TB, name, fallback string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	reason := name + " is not installed (scripts/gateways.sh installs it)"
	if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
		t.Fatal(reason)
	}
	t.Skip(reason)
	return ""
}

// start runs the gateway until the test ends and waits until its port
// accepts connections.
func start(t testing.TB, dir string, port int, logFile string, env []string, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// SIGTERM, not the default SIGKILL: nginx's master then stops its
	// workers, which would otherwise outlive it holding our output pipe.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s%s", filepath.Base(bin), err, out.String(), readLog(logFile))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s: %v\n%s%s", filepath.Base(bin), addr, err, out.String(), readLog(logFile))
		}
		// Poll again: the gateway has not bound its port yet.
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s%s", filepath.Base(bin), err, out.String(), readLog(logFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func readLog(path string) string {
	if path == "" {
		return ""
	}
	b, _ := os.ReadFile(path)
	return string(b)
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback port that was free a moment ago; the
// gateway binds it itself.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(fmt.Errorf("port %q: %w", p, err))
	}
	return n
}
