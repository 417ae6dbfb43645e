package devicecmd

import (
	"testing"
	"time"
)

// TestNextCheck: the loop waits until the renewal is due, but at most
// the interval, and never spins.
func TestNextCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		due  time.Time
		want time.Duration
	}{
		{now.Add(10 * time.Minute), 10 * time.Minute},
		{now.Add(3 * time.Hour), time.Hour},
		{now, time.Second},
		{now.Add(-time.Hour), time.Second},
	} {
		if got := nextCheck(c.due, now, time.Hour); got != c.want {
			t.Errorf("nextCheck(due in %v) = %v, want %v", c.due.Sub(now), got, c.want)
		}
	}
}
