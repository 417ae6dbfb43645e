//go:build !linux

package fleet

import (
	"errors"
	"time"
)

var errNoThreadCPU = errors.New("CPU time of a thread or a process is read on Linux only")

// threadCPU needs Linux's RUSAGE_THREAD.
func threadCPU() (time.Duration, error) { return 0, errNoThreadCPU }

// processCPU: see threadCPU.
func processCPU() (time.Duration, error) { return 0, errNoThreadCPU }
