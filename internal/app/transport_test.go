package app

import (
	"bytes"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// deadlineRecorder is a ResponseWriter that records the write deadlines
// http.ResponseController sets and what was written under each, and fails
// writes once told to, as a connection past its deadline does.
type deadlineRecorder struct {
	header    http.Header
	deadlines []time.Time
	writes    []int // bytes written under the deadline of the same index
	failAfter int   // writes before a deadline error; negative: never
}

func (r *deadlineRecorder) Header() http.Header { return r.header }
func (r *deadlineRecorder) WriteHeader(int)     {}
func (r *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	r.deadlines = append(r.deadlines, t)
	r.writes = append(r.writes, 0)
	return nil
}

func (r *deadlineRecorder) Write(p []byte) (int, error) {
	if r.failAfter == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	r.failAfter--
	r.writes[len(r.writes)-1] += len(p)
	return len(p), nil
}

// TestMinRateWriter: a long response is written a minimum-rate chunk at a
// time, each under a deadline one window ahead, so a client that keeps
// reading is never cut, however long the response; a write that misses
// its deadline is counted once.
func TestMinRateWriter(t *testing.T) {
	const minBytes, window = 1000, time.Minute
	slow := prometheus.NewCounter(prometheus.CounterOpts{Name: "slow"})
	rec := &deadlineRecorder{header: http.Header{}, failAfter: -1}
	w := &minRateWriter{ResponseWriter: rec, rc: http.NewResponseController(rec), minBytes: minBytes, window: window, slow: slow}
	before := time.Now()
	if n, err := w.Write(bytes.Repeat([]byte("x"), 2500)); n != 2500 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if len(rec.deadlines) != 3 || rec.writes[0] != 1000 || rec.writes[1] != 1000 || rec.writes[2] != 500 {
		t.Fatalf("deadlines %v, bytes under each %v; want 3 chunks of 1000, 1000, 500", rec.deadlines, rec.writes)
	}
	for _, d := range rec.deadlines {
		if d.Before(before.Add(window)) || d.After(time.Now().Add(window)) {
			t.Errorf("deadline %v is not one window after its write", d)
		}
	}
	rec.failAfter = 1
	if n, err := w.Write(bytes.Repeat([]byte("x"), 2500)); n != 1000 || err == nil {
		t.Errorf("Write past the deadline: %d, %v; want 1000 and an error", n, err)
	}
	w.Write([]byte("x"))
	if m := counterValue(t, slow); m != 1 {
		t.Errorf("slow counter %v, want 1", m)
	}
}

// counterValue reads a counter that belongs to no registry.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 {
		t.Fatalf("gather: %v", err)
	}
	return families[0].GetMetric()[0].GetCounter().GetValue()
}
