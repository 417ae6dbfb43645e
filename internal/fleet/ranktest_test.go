package fleet

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

// Worked by hand: the rank sums, U and the tie-corrected variance.
func TestMannWhitneyByHand(t *testing.T) {
	cases := []struct {
		name    string
		a, b    []float64
		u, z, p float64
	}{
		// Ranks of a: 1, 2, 3; U = 6 - 6 = 0; mean 4.5; variance 9/12·7
		// = 5.25; z = (0 - 4.5 + 0.5)/√5.25.
		{"separated", []float64{1, 2, 3}, []float64{4, 5, 6}, 0, -4 / math.Sqrt(5.25), math.Erfc(4 / math.Sqrt(5.25) / math.Sqrt2)},
		// Pooled 1 2 2 2 3 3: mid-ranks 1, 3, 3, 3, 5.5, 5.5. a's ranks sum
		// to 7, U = 1 (two tied pairs, a half each). Ties: 3³-3 + 2³-2 =
		// 30; variance 9/12·(7 - 30/30) = 4.5; z = (1 - 4.5 + 0.5)/√4.5 =
		// -√2; p = erfc(1).
		{"ties", []float64{1, 2, 2}, []float64{2, 3, 3}, 1, -math.Sqrt2, math.Erfc(1)},
		// The mirror image: U = 9 - 0, z positive, the same p.
		{"mirror", []float64{4, 5, 6}, []float64{1, 2, 3}, 9, 4 / math.Sqrt(5.25), math.Erfc(4 / math.Sqrt(5.25) / math.Sqrt2)},
		// No difference at all.
		{"identical", []float64{5, 5, 5, 5}, []float64{5, 5, 5}, 6, 0, 1},
		{"interleaved", []float64{1, 4}, []float64{2, 3}, 2, 0, 1},
	}
	for _, c := range cases {
		got, err := MannWhitney(c.a, c.b)
		if err != nil {
			t.Fatal(err)
		}
		if !near(got.U, c.u) || !near(got.Z, c.z) || !near(got.P, c.p) {
			t.Errorf("%s: U %v z %v p %v, want U %v z %v p %v", c.name, got.U, got.Z, got.P, c.u, c.z, c.p)
		}
	}
	if _, err := MannWhitney(nil, []float64{1}); err == nil {
		t.Error("an empty sample was accepted")
	}
}

// U is the count of pairs (x, y) with x > y, ties a half: check against
// that definition on random data with many ties.
func TestMannWhitneyCountsPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		a, b := make([]float64, 1+r.IntN(40)), make([]float64, 1+r.IntN(40))
		for i := range a {
			a[i] = float64(r.IntN(10))
		}
		for i := range b {
			b[i] = float64(r.IntN(10))
		}
		var pairs float64
		for _, x := range a {
			for _, y := range b {
				switch {
				case x > y:
					pairs++
				case x == y:
					pairs += 0.5
				}
			}
		}
		got, _ := MannWhitney(a, b)
		if got.U != pairs {
			t.Fatalf("U = %v, pairs counted %v", got.U, pairs)
		}
	}
}

// A shift of one standard deviation between two samples of 2,000 is
// overwhelming; two samples of one distribution are not told apart.
func TestMannWhitneyPower(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	normal := func(mean float64) []float64 {
		xs := make([]float64, 2000)
		for i := range xs {
			xs[i] = mean + r.NormFloat64()
		}
		return xs
	}
	if got, _ := MannWhitney(normal(1), normal(0)); got.Z < 15 || got.P > 1e-40 {
		t.Errorf("a shift of one σ: z %v p %v", got.Z, got.P)
	}
	if got, _ := MannWhitney(normal(0), normal(0)); math.Abs(got.Z) > 4 || got.P < 1e-4 {
		t.Errorf("no shift: z %v p %v", got.Z, got.P)
	}
}

func TestMedian(t *testing.T) {
	xs := []float64{5, 1, 4}
	if Median(xs) != 4 || Median([]float64{3, 1, 4, 2}) != 2.5 || !math.IsNaN(Median(nil)) {
		t.Fatal("median")
	}
	if xs[0] != 5 {
		t.Fatal("Median reordered its argument")
	}
}

func TestMedianAttackerAccuracy(t *testing.T) {
	constant := func(v float64, n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = v
		}
		return xs
	}
	if got := MedianAttackerAccuracy(constant(10, 100), constant(5, 100), 20); got != 1 {
		t.Errorf("separated, known slower: %v", got)
	}
	if got := MedianAttackerAccuracy(constant(5, 100), constant(10, 100), 20); got != 1 {
		t.Errorf("separated, known faster: %v", got)
	}
	if got := MedianAttackerAccuracy(constant(7, 100), constant(7, 100), 20); got != 0.5 {
		t.Errorf("identical: %v, want a coin toss", got)
	}
	// Known groups: medians 1 and 9 around a threshold of 5 (medians 5
	// and 5 → threshold 5): groups with median 9 are right, 1 wrong.
	known := append(constant(1, 20), constant(9, 20)...)
	unknown := append(constant(5, 20), constant(5, 20)...)
	if got := MedianAttackerAccuracy(known, unknown, 20); got != 0.5 {
		t.Errorf("half the known groups on each side, the unknown on the threshold: %v", got)
	}
	if !math.IsNaN(MedianAttackerAccuracy(constant(1, 10), constant(1, 30), 20)) {
		t.Error("fewer probes than one group gave an accuracy")
	}
}
