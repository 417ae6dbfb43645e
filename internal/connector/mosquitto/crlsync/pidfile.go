package crlsync

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// maxPIDFile bounds the pid file read: a decimal process ID and a newline.
const maxPIDFile = 64

// PIDFile is a Reloader that sends SIGHUP to the process whose ID the
// named file holds (Mosquitto's pid_file): Mosquitto 2.0 then reads its
// configuration again, the listeners' crlfile included, and keeps its
// connections. The file is read at every reload, so a restarted broker
// is found.
type PIDFile string

// Reload signals the process.
func (f PIDFile) Reload() error {
	file, err := os.Open(string(f))
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer file.Close()
	data := make([]byte, maxPIDFile+1)
	n, err := file.Read(data)
	if err != nil {
		return fmt.Errorf("pid file %s: %w", f, err)
	}
	pid, err := ParsePID(data[:n])
	if err != nil {
		return fmt.Errorf("pid file %s: %w", f, err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal process %d: %w", pid, err)
	}
	return nil
}

// ParsePID reads a pid file's content: a positive decimal process ID,
// surrounded by white space at most. Process 1 is refused: signalling
// init is never what a broker's pid file means.
func ParsePID(data []byte) (int, error) {
	if len(data) > maxPIDFile {
		return 0, errors.New("not a process ID: too long")
	}
	text := string(bytes.TrimSpace(data))
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 1 || text[0] == '+' || text[0] == '0' {
		return 0, fmt.Errorf("not a process ID: %q", text)
	}
	return pid, nil
}
