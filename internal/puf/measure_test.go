package puf

import (
	"context"
	"errors"
	"math"
	"testing"
)

func measureAt(t *testing.T, ber float64, trials int64, workers int) Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BitErrorRate = ber
	r, err := MeasureFailureRate(context.Background(), MeasureConfig{
		Chip: cfg, Trials: trials, Workers: workers, Seed: &[32]byte{42},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMeasureMatchesAnalytic runs at 20 %, where failures are common enough
// to compare the simulation with the analytic rate in a few thousand trials.
func TestMeasureMatchesAnalytic(t *testing.T) {
	r := measureAt(t, 0.20, 4000, 0)
	if r.Trials != 4000 || r.BitErrorRate != 0.20 || r.Seed != ([32]byte{42}) {
		t.Fatalf("result %+v", r)
	}
	if r.Undetected != 0 {
		t.Fatalf("%d wrong seeds escaped the check tag", r.Undetected)
	}
	// 4000 trials: one standard deviation is 0.004; allow five.
	if math.Abs(r.Rate-r.Analytic) > 0.02 {
		t.Fatalf("measured %v, analytic %v", r.Rate, r.Analytic)
	}
	if r.Upper95 <= r.Rate || r.Rate != float64(r.Failures)/float64(r.Trials) {
		t.Fatalf("inconsistent result %+v", r)
	}
}

func TestMeasureLowNoise(t *testing.T) {
	r := measureAt(t, 0.05, 2500, 0)
	if r.Failures != 0 {
		t.Fatalf("%d failures at 5 %%", r.Failures)
	}
	if want := 3.0 / 2500; !relClose(r.Upper95, want, 0.01) {
		t.Fatalf("upper bound %v, want about %v", r.Upper95, want)
	}
}

func TestMeasureReproducible(t *testing.T) {
	a := measureAt(t, 0.21, 2500, 1)
	b := measureAt(t, 0.21, 2500, 3)
	if a.Failures != b.Failures || a.Failures == 0 {
		t.Fatalf("1 worker: %d failures, 3 workers: %d", a.Failures, b.Failures)
	}
}

func TestMeasureProgress(t *testing.T) {
	var last, calls int64
	_, err := MeasureFailureRate(context.Background(), MeasureConfig{
		Chip: DefaultConfig(), Trials: 2500,
		Progress: func(done int64) {
			if done <= last {
				t.Errorf("progress went from %d to %d", last, done)
			}
			last = done
			calls++
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != 2500 || calls != 3 {
		t.Fatalf("last progress %d after %d calls, want 2500 after 3", last, calls)
	}
}

func TestMeasureRejects(t *testing.T) {
	bad := DefaultConfig()
	bad.BitErrorRate = 0.6
	tests := []struct {
		name string
		mc   MeasureConfig
	}{
		{"zero trials", MeasureConfig{Chip: DefaultConfig()}},
		{"negative workers", MeasureConfig{Chip: DefaultConfig(), Trials: 1, Workers: -1}},
		{"even enrol reads", MeasureConfig{Chip: DefaultConfig(), Trials: 1, EnrolReads: 4}},
		{"bad BER", MeasureConfig{Chip: bad, Trials: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MeasureFailureRate(context.Background(), tt.mc); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := MeasureFailureRate(ctx, MeasureConfig{Chip: DefaultConfig(), Trials: 1000})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}
