package fleet

import (
	"errors"
	"math"
	"slices"
)

// RankTest is the outcome of a two-sided Mann–Whitney U test of two
// independent samples a and b: does one tend to be larger than the other?
// It assumes nothing about the distributions, which suits latencies, whose
// tails are long and whose shapes are not normal.
type RankTest struct {
	// U is a's statistic: the number of pairs (x from a, y from b) with
	// x > y, a tie counting one half. Its mean is len(a)·len(b)/2 when
	// neither sample tends to be larger.
	U float64 `json:"u"`
	// Z is U standardised by the normal approximation, with the variance
	// corrected for ties and a continuity correction of one half; positive
	// when a tends to be larger.
	Z float64 `json:"z"`
	// P is the two-sided p value of Z: the chance of a |Z| at least this
	// large if neither sample tends to be larger.
	P float64 `json:"p"`
}

// MannWhitney runs the test in O(n log n). The normal approximation is
// accurate from about 20 values a sample; the timing probe takes
// thousands.
func MannWhitney(a, b []float64) (RankTest, error) {
	if len(a) == 0 || len(b) == 0 {
		return RankTest{}, errors.New("rank test: both samples need at least one value")
	}
	type labelled struct {
		v     float64
		fromA bool
	}
	pooled := make([]labelled, 0, len(a)+len(b))
	for _, v := range a {
		pooled = append(pooled, labelled{v, true})
	}
	for _, v := range b {
		pooled = append(pooled, labelled{v, false})
	}
	slices.SortFunc(pooled, func(x, y labelled) int { return cmpFloat(x.v, y.v) })
	// Equal values share the mean of the ranks they span (ranks from 1);
	// each run of t ties takes t³−t off the variance.
	var rankSumA, ties float64
	for i := 0; i < len(pooled); {
		j := i
		for j < len(pooled) && pooled[j].v == pooled[i].v {
			j++
		}
		midRank := float64(i+j+1) / 2
		for _, p := range pooled[i:j] {
			if p.fromA {
				rankSumA += midRank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	na, nb, n := float64(len(a)), float64(len(b)), float64(len(pooled))
	res := RankTest{U: rankSumA - na*(na+1)/2, P: 1}
	variance := na * nb / 12 * (n + 1)
	if n > 1 {
		variance = na * nb / 12 * ((n + 1) - ties/(n*(n-1)))
	}
	if dev := res.U - na*nb/2; variance > 0 && math.Abs(dev) > 0.5 {
		res.Z = (dev - math.Copysign(0.5, dev)) / math.Sqrt(variance)
		res.P = min(1, math.Erfc(math.Abs(res.Z)/math.Sqrt2))
	}
	return res, nil
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Median is the middle value of xs (the mean of the middle two for an
// even count); NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 0 {
		return (s[mid-1] + s[mid]) / 2
	}
	return s[mid]
}

// MedianAttackerAccuracy is how often an attacker who times group probes
// of one identity and compares their median with a threshold tells a
// registered identity (known) from an unregistered one (unknown). The
// attacker is given the best threshold it could calibrate, midway between
// the two samples' medians, on the side they lie: known samples are cut
// into consecutive groups, as are unknown ones, and each group is a guess.
// A group median exactly on the threshold counts as a coin toss. 0.5 means
// the attacker learns nothing; 1 means it is always right.
func MedianAttackerAccuracy(known, unknown []float64, group int) float64 {
	if group < 1 || len(known) < group || len(unknown) < group {
		return math.NaN()
	}
	mk, mu := Median(known), Median(unknown)
	threshold := (mk + mu) / 2
	knownAbove := mk >= mu
	var right, guesses float64
	score := func(xs []float64, isKnown bool) {
		for i := 0; i+group <= len(xs); i += group {
			m := Median(xs[i : i+group])
			guesses++
			switch {
			case m == threshold:
				right += 0.5
			case (m > threshold) == (knownAbove == isKnown):
				right++
			}
		}
	}
	score(known, true)
	score(unknown, false)
	return right / guesses
}
