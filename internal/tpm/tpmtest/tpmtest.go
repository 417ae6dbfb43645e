// Package tpmtest starts the swtpm TPM 2.0 simulator for tests: one
// simulator per call, with its own state directory and ports, stopped when
// the test ends.
package tpmtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// Simulator is a running swtpm.
type Simulator struct {
	// Address is the simulator's command port, as --tpm takes it.
	Address tpm.Address
	// StateDir holds the simulator's NVRAM: its seeds, so its SRK.
	StateDir string
}

// Start starts swtpm and waits until it answers. A missing swtpm fails the
// test with the Debian package to install.
func Start(t testing.TB) *Simulator {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm not found: install the Debian package swtpm (apt-get install swtpm swtpm-tools): %v", err)
	}
	dir := t.TempDir()
	// Two free ports (command, control); another process may take one
	// between our probe and swtpm's bind, so a failed start is retried.
	for attempt := 0; ; attempt++ {
		sim, err := start(t, bin, dir)
		if err == nil {
			return sim
		}
		if attempt == 4 {
			t.Fatalf("start swtpm: %v", err)
		}
	}
}

func start(t testing.TB, bin, dir string) (*Simulator, error) {
	port, err := freePorts()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+filepath.Join(dir, "swtpm.log"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var once sync.Once
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		once.Do(func() {
			cmd.Process.Kill()
			<-exited
		})
	}
	addr := tpm.Address{Kind: tpm.TCP, Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	// Wait for the command port: swtpm binds it after loading its state.
	// The bound only stops a wedged simulator from hanging the test run.
	give := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(give) {
			stop()
			return nil, fmt.Errorf("swtpm did not answer on %s: %s", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), stderr.String())
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("swtpm exited: %s", stderr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := tpm.Open(ctx, addr)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(stop)
	return &Simulator{Address: addr, StateDir: dir}, nil
}

// freePorts returns a port p such that p and p+1 were both free.
func freePorts() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no two adjacent free ports")
}

// Open returns the simulator's TPM.
func (s *Simulator) Open(t testing.TB) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(context.Background(), s.Address)
	if err != nil {
		t.Fatalf("open swtpm: %v", err)
	}
	return tp
}

// String returns the simulator's address as --tpm takes it.
func (s *Simulator) String() string { return s.Address.String() }
