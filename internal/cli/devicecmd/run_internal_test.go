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

// TestCycleWaitHonoursRetryAfter: device run polls again no later than
// the platform's Retry-After, never sooner than a second, and waits for
// the renewal or the interval when the platform gives none.
func TestCycleWaitHonoursRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		due   time.Duration
		retry time.Duration
		want  time.Duration
	}{
		{3 * time.Hour, 90 * time.Second, 90 * time.Second},
		{3 * time.Hour, 0, time.Hour},
		{10 * time.Minute, 2 * time.Hour, 10 * time.Minute},
		{3 * time.Hour, time.Millisecond, time.Second},
	} {
		if got := cycleWait(now.Add(c.due), c.retry, now, time.Hour); got != c.want {
			t.Errorf("cycleWait(due in %v, Retry-After %v) = %v, want %v", c.due, c.retry, got, c.want)
		}
	}
}
