package puf

import (
	"fmt"
	"math"
	"testing"
)

func relClose(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Abs(want)
}

func TestBinomUpperTail(t *testing.T) {
	// P(Bin(7, 0.15) >= 4) by hand: Σ C(7,k) 0.15^k 0.85^(7-k), k = 4..7.
	want := 35*math.Pow(0.15, 4)*math.Pow(0.85, 3) + 21*math.Pow(0.15, 5)*math.Pow(0.85, 2) +
		7*math.Pow(0.15, 6)*0.85 + math.Pow(0.15, 7)
	if got := binomUpperTail(7, 4, 0.15); !relClose(got, want, 1e-12) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := binomUpperTail(10, 0, 0.3); got != 1 {
		t.Fatalf("P(X >= 0) = %v", got)
	}
	// A far tail: P(Bin(100, 0.01) = 100) alone is 1e-200.
	if got := binomUpperTail(100, 100, 0.01); !relClose(got, 1e-200, 1e-9) {
		t.Fatalf("far tail %v", got)
	}
}

func TestAnalyticFailureRate(t *testing.T) {
	tests := []struct {
		ber, want float64
	}{
		{0, 0},
		{0.15, 3.1859e-7}, // design point: below the 1e-6 target
		{0.20, 0.071076},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("ber=%v", tt.ber), func(t *testing.T) {
			got := AnalyticFailureRate(tt.ber, DefaultEnrolReads)
			if !relClose(got, tt.want, 1e-4) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	prev := 0.0
	for ber := 0.01; ber < 0.5; ber += 0.01 {
		got := AnalyticFailureRate(ber, DefaultEnrolReads)
		if got < prev-1e-12 || got > 1 { // rounding near 1
			t.Fatalf("not monotone in [0, 1] at %v: %v after %v", ber, got, prev)
		}
		prev = got
	}
	// A single-read enrolment leaves more reference errors.
	if AnalyticFailureRate(0.15, 1) <= AnalyticFailureRate(0.15, DefaultEnrolReads) {
		t.Fatal("one enrolment read should fail more often than 31")
	}
}

func TestUpper95(t *testing.T) {
	tests := []struct {
		failures, trials int64
		want             float64
	}{
		{0, 1_000_000, 2.99573e-6}, // −ln(0.05)/n, the rule of three
		{3, 10_000_000, 7.7537e-7}, // χ²(0.95; 8)/2n
		{1, 20, 0.21611},           // textbook Clopper–Pearson
		{10, 10, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.failures, tt.trials), func(t *testing.T) {
			if got := upper95(tt.failures, tt.trials); !relClose(got, tt.want, 2e-4) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Many failures: close to the normal approximation.
	got := upper95(80_000, 1_000_000)
	if want := 0.08 + 1.645*math.Sqrt(0.08*0.92/1e6); math.Abs(got-want) > 2e-5 {
		t.Fatalf("80000/1e6: got %v, want about %v", got, want)
	}
}

func TestResidualEntropy(t *testing.T) {
	if got := ResidualEntropy(0.5); got != 256 {
		t.Fatalf("unbiased: %v bits, want exactly 256", got)
	}
	if a, b := ResidualEntropy(0.45), ResidualEntropy(0.55); !relClose(a, b, 1e-12) {
		t.Fatalf("not symmetric: %v vs %v", a, b)
	}
	prev := 256.0
	for _, bias := range []float64{0.51, 0.55, 0.6, 0.7} {
		got := ResidualEntropy(bias)
		if got >= prev || got < 0 {
			t.Fatalf("bias %v: %v bits, want below %v", bias, got, prev)
		}
		prev = got
	}
	if got := ResidualEntropy(0.9); got != 0 {
		t.Fatalf("heavily biased: %v bits, want 0", got)
	}
}
