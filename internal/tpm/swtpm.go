package tpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Starting the swtpm TPM 2.0 simulator, for what runs without a TPM of its
// own: tests (package tpmtest) and "hallmark demo --hsm". A production
// gateway uses its TPM's device node and never starts one.

// ErrNoSimulator is swtpm missing from PATH.
var ErrNoSimulator = errors.New("swtpm not found: install the Debian package swtpm")

// simulatorStartLimit bounds the wait for a started swtpm to answer; it
// only stops a wedged simulator from hanging its caller.
const simulatorStartLimit = 20 * time.Second

// Simulator is a running swtpm, listening on 127.0.0.1 only.
type Simulator struct {
	// Address is the simulator's command port, as --tpm takes it.
	Address Address
	// StateDir holds the simulator's NVRAM: its seeds, so its SRK. Keys
	// it wrapped load only while that state lives.
	StateDir string

	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// StartSimulator starts swtpm with its state in stateDir (which must
// exist) on two free local ports and waits until it answers. Stop it with
// Stop; stateDir is the caller's to remove.
func StartSimulator(ctx context.Context, stateDir string) (*Simulator, error) {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return nil, ErrNoSimulator
	}
	// Another process may take a probed port before swtpm binds it, so a
	// failed start is retried on other ports.
	for attempt := 0; ; attempt++ {
		sim, err := startSimulator(ctx, bin, stateDir)
		if err == nil || attempt == 4 || ctx.Err() != nil {
			return sim, err
		}
	}
}

func startSimulator(ctx context.Context, bin, dir string) (*Simulator, error) {
	port, err := freePortPair()
	if err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	var stderr bytes.Buffer
	// Not exec.CommandContext: the simulator outlives the start, until Stop.
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+filepath.Join(dir, "swtpm.log"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	s := &Simulator{StateDir: dir, cmd: cmd, exited: make(chan struct{}),
		Address: Address{Kind: TCP, Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, &stderr); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady waits for the command port: swtpm binds it after loading its
// state.
func (s *Simulator) waitReady(ctx context.Context, stderr *bytes.Buffer) error {
	give := time.Now().Add(simulatorStartLimit)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("start swtpm: it exited: %s", bytes.TrimSpace(stderr.Bytes()))
		case <-ctx.Done():
			return fmt.Errorf("start swtpm: %w", ctx.Err())
		default:
		}
		if time.Now().After(give) {
			return fmt.Errorf("start swtpm: no answer on %s within %v", s.Address, simulatorStartLimit)
		}
		probe, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := Open(probe, s.Address)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the simulator and waits for it to exit; its state stays in
// StateDir. Stopping twice is harmless.
func (s *Simulator) Stop() error {
	var err error
	s.once.Do(func() {
		if e := s.cmd.Process.Kill(); e != nil && !errors.Is(e, os.ErrProcessDone) {
			err = fmt.Errorf("stop swtpm: %w", e)
		}
		<-s.exited
	})
	return err
}

// String returns the simulator's address as --tpm takes it.
func (s *Simulator) String() string { return s.Address.String() }

// freePortPair returns a port p such that p and p+1 were both free: swtpm
// takes a command port and a control port.
func freePortPair() (int, error) {
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
	return 0, errors.New("no two adjacent free ports")
}
