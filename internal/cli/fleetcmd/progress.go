package fleetcmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// startProgress draws a progress bar on standard error, when it is a
// terminal or force is set, until the returned function is called.
func startProgress(s *cmdline.Streams, force bool, total int64, unit string, read func() (done, failed int64)) func() {
	if !force && !isTerminal(s.Err) {
		return func() {}
	}
	start := time.Now()
	draw := func(final bool) {
		done, failed := read()
		frac := float64(done) / float64(max(total, 1))
		const width = 30
		filled := min(int(frac*width), width)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
		line := fmt.Sprintf("\r[%s] %d/%d %s %5.1f%%  %.0f/s", bar, done, total, unit, 100*frac, rate)
		if failed > 0 {
			line += fmt.Sprintf("  errors %d", failed)
		}
		if final {
			line += "\n"
		}
		io.WriteString(s.Err, line)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw(false)
			case <-stop:
				draw(true)
				return
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
