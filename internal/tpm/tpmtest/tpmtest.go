// Package tpmtest starts the swtpm TPM 2.0 simulator for tests: one
// simulator per call, with its own state directory and ports, stopped when
// the test ends. The starting itself is tpm.StartSimulator, which the demo
// shares.
package tpmtest

import (
	"context"
	"errors"
	"testing"

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
	sim, err := tpm.StartSimulator(context.Background(), t.TempDir())
	if errors.Is(err, tpm.ErrNoSimulator) {
		t.Fatalf("%v (apt-get install swtpm swtpm-tools)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop() })
	return &Simulator{Address: sim.Address, StateDir: sim.StateDir}
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
