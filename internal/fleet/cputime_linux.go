package fleet

import (
	"syscall"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD, which the syscall package does
// not name: the calling thread's usage alone.
const rusageThread = 1

// threadCPU is the CPU time (user and system) the calling OS thread has
// used. The caller locks its goroutine to the thread (runtime.LockOSThread)
// so that this is that goroutine's CPU: a locked thread runs nothing else,
// and sleeps while its goroutine waits.
func threadCPU() (time.Duration, error) {
	return rusage(rusageThread)
}

// processCPU is the CPU time this process has used, all threads.
func processCPU() (time.Duration, error) {
	return rusage(syscall.RUSAGE_SELF)
}

func rusage(who int) (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
