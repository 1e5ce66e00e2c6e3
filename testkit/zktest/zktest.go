// Package zktest gives a test a real ZooKeeper server in one call: Debian's
// zookeeper, standalone on a free loopback port, from the configuration in
// deploy/cluster/zookeeper/zoo.cfg (rendered only for its port and paths),
// killed after the test. ClickHouse replicas coordinate through it.
//
// When the server cannot be had, the test fails under CI or
// RAMPART_REQUIRE_SERVERS and is skipped, saying why, otherwise.
package zktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-io/rampart/testkit/deployfiles"
)

// Jar is where Debian's zookeeper package installs the server.
const Jar = "/usr/share/java/zookeeper.jar"

// Server is a running standalone ZooKeeper.
type Server struct {
	// Host and Port are where clients reach it; Addr is both.
	Host string
	Port int
	Addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Unavailable fails (under CI) or skips the test with reason.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("RAMPART_REQUIRE_SERVERS") != "" {
		t.Fatalf("ZooKeeper required under CI: %s", reason)
	}
	t.Skipf("ZooKeeper unavailable (set CI or RAMPART_REQUIRE_SERVERS to make this fatal): %s", reason)
}

// New starts a server for the test and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		Unavailable(t, err.Error())
	}
	t.Cleanup(s.Stop)
	return s
}

// Find returns the java binary and checks the server's jar is installed,
// or says how to install it.
func Find() (string, error) {
	if _, err := os.Stat(Jar); err != nil {
		return "", fmt.Errorf("zktest: %s missing (apt-get install zookeeper, or make deps)", Jar)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("zktest: java not found (apt-get install zookeeper pulls it in)")
	}
	return java, nil
}

// Start launches a server whose files live under dir and waits until it
// answers ruok and serves (srvr).
func Start(ctx context.Context, dir string) (*Server, error) {
	java, err := Find()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	cfg, err := deployfiles.Render("deploy/cluster/zookeeper/zoo.cfg", map[string]string{
		"ZK_DATA_DIR": data, "ZK_HOST": s.Host, "ZK_CLIENT_PORT": fmt.Sprint(port),
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), cfg, 0o644); err != nil {
		return nil, err
	}
	return s, s.start(ctx, java)
}

func (s *Server) start(ctx context.Context, java string) error {
	log, err := os.OpenFile(filepath.Join(s.dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// A small heap: the tests' ZooKeeper holds a few thousand znodes, and
	// the machine is shared.
	cmd := exec.Command(java, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.log.dir="+s.dir,
		"-cp", Jar, "org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("zktest: start: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(s.done) }()
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(45 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("zktest: exited during start; see %s", filepath.Join(s.dir, "zookeeper.log"))
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		default:
		}
		if last = s.Healthy(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("zktest: not serving after 45s: %v", last)
}

// Healthy asks the server ruok, then srvr, and says what is wrong, if
// anything: a server answers imok before it serves, so both are asked.
func (s *Server) Healthy() error {
	if got, err := s.Command("ruok"); err != nil {
		return err
	} else if got != "imok" {
		return fmt.Errorf("zktest: ruok answered %q", got)
	}
	got, err := s.Command("srvr")
	if err != nil {
		return err
	}
	if !strings.Contains(got, "Mode: standalone") {
		return fmt.Errorf("zktest: srvr answered %q", got)
	}
	return nil
}

// Command sends one four-letter command and returns the answer.
func (s *Server) Command(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	return strings.TrimSpace(string(b)), err
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
