package puf

import "math"

// logBinomPMF is log P(X = k) for X ~ Bin(n, p), computed through log-gamma
// so that it neither overflows nor underflows for n in the millions.
func logBinomPMF(n, k int64, p float64) float64 {
	switch {
	case p == 0:
		if k == 0 {
			return 0
		}
		return math.Inf(-1)
	case p == 1:
		if k == n {
			return 0
		}
		return math.Inf(-1)
	}
	ln, _ := math.Lgamma(float64(n + 1))
	lk, _ := math.Lgamma(float64(k + 1))
	lnk, _ := math.Lgamma(float64(n - k + 1))
	return ln - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
}

// binomUpperTail is P(X >= k) for X ~ Bin(n, p), summed term by term so that
// tails far below float64 epsilon (1e-40 and less) keep full relative
// precision, which 1 − CDF cannot.
func binomUpperTail(n, k int64, p float64) float64 {
	if k <= 0 {
		return 1
	}
	sum := 0.0
	for i := k; i <= n; i++ {
		sum += math.Exp(logBinomPMF(n, i, p))
	}
	return min(sum, 1)
}

// binomCDF is P(X <= k) for X ~ Bin(n, p) with k <= n·p (the side the
// Clopper–Pearson search needs), summed from k downwards: the terms fall
// monotonically there, so the sum stops once they no longer matter.
func binomCDF(n, k int64, p float64) float64 {
	term := math.Exp(logBinomPMF(n, k, p))
	sum := term
	ratio := (1 - p) / p
	for i := k; i > 0 && term > sum*1e-17; i-- {
		term *= float64(i) / float64(n-i+1) * ratio // P(X=i-1) from P(X=i)
		sum += term
	}
	return min(sum, 1)
}

// upper95 is the one-sided 95 % Clopper–Pearson upper confidence bound on a
// failure probability after observing failures in trials. With no failures
// it is 1 − 0.05^(1/trials) ≈ 3/trials (the rule of three).
func upper95(failures, trials int64) float64 {
	const alpha = 0.05
	switch {
	case trials <= 0:
		return 1
	case failures >= trials:
		return 1
	case failures == 0:
		return -math.Expm1(math.Log(alpha) / float64(trials))
	}
	// P(X <= failures) falls as p grows; find where it crosses alpha.
	lo, hi := float64(failures)/float64(trials), 1.0
	for range 200 {
		mid := (lo + hi) / 2
		if mid == lo || mid == hi {
			break
		}
		if binomCDF(trials, failures, mid) > alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// AnalyticFailureRate is the exact probability that one reconstruction
// fails at bit error rate ber after an enrolment that majority-voted
// enrolReads readings. Read errors relative to the enrolment reference are
// independent with probability p' = p(1−e) + (1−p)e, where e is the chance
// that the vote got a cell wrong; a repetition block fails when 4 or more
// of its 7 bits are wrong (q = P(Bin(7, p') >= 4)); reconstruction fails
// exactly when more than t = 19 of the 418 blocks fail, because the BCH
// decoder corrects every pattern of up to t errors and can never reach the
// right codeword from more.
func AnalyticFailureRate(ber float64, enrolReads int) float64 {
	if enrolReads < 1 {
		enrolReads = 1
	}
	e := binomUpperTail(int64(enrolReads), int64(enrolReads/2+1), ber)
	pp := ber*(1-e) + (1-ber)*e
	q := binomUpperTail(RepetitionLength, RepetitionLength/2+1, pp)
	return binomUpperTail(BCHLength, BCHCorrectable+1, q)
}

// ResidualEntropy is a lower bound, in bits, on the average min-entropy of
// the enrolment reference given the helper data, for independent cells that
// are 1 with probability bias. Within each 7-bit repetition block the
// offset reveals the block up to complement, leaving
// −log2 Σ_pairs max(P(v), P(¬v)) bits per block; the outer code-offset then
// leaks at most n − k = 162 bits more. With unbiased cells this is exactly
// 418 − 162 = 256 bits; any bias lowers it.
func ResidualEntropy(bias float64) float64 {
	lo := min(bias, 1-bias)
	// Pairs {v, ¬v}: the more likely member has at most 3 bits of the rarer
	// value, so Σ max = P(Bin(7, lo) <= 3).
	// Exact small binomial coefficients keep the unbiased case exactly 256.
	sum, coef := 0.0, 1.0
	for w := range RepetitionLength/2 + 1 {
		sum += coef * math.Pow(lo, float64(w)) * math.Pow(1-lo, float64(RepetitionLength-w))
		coef = coef * float64(RepetitionLength-w) / float64(w+1)
	}
	perBlock := -math.Log2(sum)
	return math.Max(0, BCHLength*perBlock-(BCHLength-BCHMessageBits))
}
