package cmdline

import (
	"bytes"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// terminalBuffer is a buffer that says it is a terminal.
type terminalBuffer struct{ bytes.Buffer }

func (*terminalBuffer) IsTerminal() bool { return true }

func runProgress(errStream interface{ String() string }, s *Streams, p Progress) string {
	var done atomic.Int64
	p.Read = func() (int64, int64) { return done.Load(), 0 }
	stop := s.StartProgress(p)
	done.Store(p.Total)
	stop()
	return errStream.String()
}

func TestProgressOnATerminal(t *testing.T) {
	var errOut terminalBuffer
	got := runProgress(&errOut, &Streams{Err: &errOut}, Progress{Label: "BER 0.05", Unit: "trials", Total: 2000})
	if !strings.Contains(got, "BER 0.05 [") || !strings.Contains(got, "] 2000/2000 trials 100.0%") {
		t.Fatalf("no final progress line: %q", got)
	}
	// Not kept: the line is erased, so the cursor is back at the start of
	// an empty line for what follows on standard output.
	if !strings.HasSuffix(got, "\r") || strings.Contains(got, "\n") {
		t.Fatalf("progress line not erased: %q", got)
	}
}

func TestProgressKept(t *testing.T) {
	var errOut terminalBuffer
	got := runProgress(&errOut, &Streams{Err: &errOut}, Progress{Unit: "devices", Total: 5, Keep: true})
	if !strings.Contains(got, "] 5/5 devices 100.0%") || !strings.HasSuffix(got, "/s\n") {
		t.Fatalf("final line not kept: %q", got)
	}
}

func TestProgressQuietOffATerminal(t *testing.T) {
	var errOut bytes.Buffer
	if got := runProgress(&errOut, &Streams{Err: &errOut}, Progress{Unit: "trials", Total: 10}); got != "" {
		t.Fatalf("progress written to a pipe: %q", got)
	}
	// --progress asks for it anyway.
	if got := runProgress(&errOut, &Streams{Err: &errOut}, Progress{Unit: "trials", Total: 10, Always: true}); !strings.Contains(got, "10/10 trials") {
		t.Fatalf("forced progress missing: %q", got)
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if !IsTerminal(&terminalBuffer{}) {
		t.Error("a writer that says it is a terminal is not one")
	}
}
