// Package proc runs the server processes a load run measures against, as
// they are deployed (nats-server), and reads what they cost (memory).
package proc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NATS is a nats-server process with JetStream.
type NATS struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// ClientURL is where clients connect.
func (p *NATS) ClientURL() string { return p.url }

// Pid is the process id.
func (p *NATS) Pid() int { return p.cmd.Process.Pid }

// Shutdown stops the server as an operator would, and waits for it.
func (p *NATS) Shutdown() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StartNATS runs bin (a nats-server binary) with JetStream storing files
// under dir, on a free loopback port, and waits until it listens.
func StartNATS(ctx context.Context, bin, dir string, syncAlways bool) (*NATS, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sync := ""
	if syncAlways {
		sync = "\n  sync_interval: always"
	}
	conf := filepath.Join(dir, "nats.conf")
	cfg := fmt.Sprintf("server_name: rampart-load\nlisten: %q\njetstream {\n  store_dir: %q%s\n}\n", addr, filepath.Join(dir, "store"), sync)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "nats.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &NATS{url: "nats://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	if err := WaitListening(addr, p.done); err != nil {
		p.Shutdown()
		log, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("nats-server: %w: %s", err, log)
	}
	return p, nil
}

// FreeAddr is a loopback address with a port free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitListening waits up to 30 s for addr to accept connections, or for
// the process serving it to end (done closed).
func WaitListening(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Memory is a process's resident set in bytes: now and its peak.
type Memory struct{ RSS, HWM int64 }

// ReadMemory reads VmRSS and VmHWM of pid ("self" for this process).
func ReadMemory(pid string) (Memory, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		}
	}
	return m, nil
}
