package cmdline

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// IsTerminal reports whether w is a terminal, where a progress line that
// redraws itself helps; a pipe or a log file would only collect carriage
// returns. A writer may answer for itself with an IsTerminal() bool
// method: tests use one to see what a user at a terminal sees.
func IsTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ IsTerminal() bool }); ok {
		return t.IsTerminal()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Progress describes long work whose advance a command shows on standard
// error while it runs.
type Progress struct {
	// Label, if set, starts the line ("BER 0.05").
	Label string
	// Unit names what is counted ("devices", "trials").
	Unit  string
	Total int64
	// Read returns how much is done and how much failed so far. It is
	// called from another goroutine, so it must be safe for concurrent use
	// (atomic counters).
	Read func() (done, failed int64)
	// Keep leaves the last line on the screen when the work ends; without
	// it the line is erased, so that what the command prints on standard
	// output (a table row) is not interleaved with progress lines.
	Keep bool
	// Always draws even when standard error is not a terminal (a
	// --progress flag).
	Always bool
}

// progressInterval is how often the progress line is redrawn.
const progressInterval = 250 * time.Millisecond

// StartProgress draws p on standard error, when that is a terminal or
// p.Always is set, until the returned function is called; that call draws
// the final state and returns once nothing more will be written. Off a
// terminal nothing is written at all.
func (s *Streams) StartProgress(p Progress) (stop func()) {
	if !p.Always && !IsTerminal(s.Err) {
		return func() {}
	}
	start := time.Now()
	width := 0
	draw := func(final bool) {
		line := p.line(time.Since(start))
		width = max(width, len(line))
		switch {
		case final && p.Keep:
			line = "\r" + line + "\n"
		case final:
			line = "\r" + line + "\r" + strings.Repeat(" ", width) + "\r"
		default:
			line = "\r" + line
		}
		io.WriteString(s.Err, line)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw(false)
			case <-done:
				draw(true)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// line is one progress line: a bar, the count, the share and the rate.
func (p Progress) line(elapsed time.Duration) string {
	done, failed := p.Read()
	frac := float64(done) / float64(max(p.Total, 1))
	const barWidth = 30
	filled := max(0, min(int(frac*barWidth), barWidth))
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	line := fmt.Sprintf("[%s] %d/%d %s %5.1f%%  %.0f/s", bar, done, p.Total, p.Unit, 100*frac, rate)
	if p.Label != "" {
		line = p.Label + " " + line
	}
	if failed > 0 {
		line += fmt.Sprintf("  errors %d", failed)
	}
	return line
}
