// Package chserver runs a private clickhouse-server process on loopback,
// with its own data directory and free ports. `rampart demo` uses it when no
// ClickHouse address is given, and tests use it through chtest.
package chserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Binary is the server executable looked up on PATH (and in /usr/sbin,
// where Debian installs it).
const Binary = "clickhouse-server"

// Server is a running clickhouse-server.
type Server struct {
	// Addr is host:port of the native protocol; HTTPAddr of the HTTP interface.
	Addr     string
	HTTPAddr string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Find returns the path of the server binary, or an error saying how to install it.
func Find() (string, error) {
	if p, err := exec.LookPath(Binary); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/" + Binary, "/usr/bin/" + Binary} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chserver: %s not found (apt-get install clickhouse-server)", Binary)
}

// Start launches a server whose files live under dir, on free ports, and
// waits until it accepts connections.
func Start(ctx context.Context, dir string) (*Server, error) {
	p, err := FreePorts()
	if err != nil {
		return nil, err
	}
	return StartOn(ctx, dir, p, nil)
}

// Ports are where a server listens on loopback.
type Ports struct {
	// TCP is the native protocol, HTTP the HTTP interface.
	TCP, HTTP int
	// Interserver is where replicas fetch parts from this one (only a
	// replica's config.d names it).
	Interserver int
}

// FreePorts picks three free loopback ports. A cluster's servers must
// know each other's ports before any starts, so they are chosen apart
// from starting.
func FreePorts() (Ports, error) {
	var p Ports
	for _, port := range []*int{&p.TCP, &p.HTTP, &p.Interserver} {
		n, err := freePort()
		if err != nil {
			return Ports{}, err
		}
		*port = n
	}
	return p, nil
}

// StartOn is Start on the given ports, with configD (file name to
// content) written to dir/config.d, which the server merges into its
// configuration: a cluster's remote_servers, macros and zookeeper.
func StartOn(ctx context.Context, dir string, p Ports, configD map[string][]byte) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	if err := writeConfig(dir, p.TCP, p.HTTP); err != nil {
		return nil, err
	}
	if len(configD) > 0 {
		if err := os.MkdirAll(filepath.Join(dir, "config.d"), 0o755); err != nil {
			return nil, err
		}
		for name, body := range configD {
			if err := os.WriteFile(filepath.Join(dir, "config.d", filepath.Base(name)), body, 0o644); err != nil {
				return nil, err
			}
		}
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", p.TCP), HTTPAddr: fmt.Sprintf("127.0.0.1:%d", p.HTTP), dir: dir}
	if err := s.start(ctx, bin); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is where the server's files live (its logs among them).
func (s *Server) Dir() string { return s.dir }

func (s *Server) start(ctx context.Context, bin string) error {
	log, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a stop takes any children with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("chserver: start: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(s.done) }()
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("chserver: exited during start; see %s", filepath.Join(s.dir, "stderr.log"))
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return errors.New("chserver: not accepting connections after 30s")
}

// Pid is the server process's id, for measuring what it costs.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills the server (SIGKILL: tests use it as a crash too) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	bin, err := Find()
	if err != nil {
		return err
	}
	return s.start(ctx, bin)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeConfig(dir string, tcpPort, httpPort int) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/stderr.log</errorlog></logger>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
`, dir, tcpPort, httpPort)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}
