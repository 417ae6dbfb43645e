package fleet

import (
	"math"
	"time"
)

// histogram records latencies in logarithmic buckets 1 % wide from 1 µs
// up, so that a run of any length keeps constant memory and its quantiles
// are within 1 % of the exact ones.
type histogram struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	histMin    = float64(time.Microsecond)
	histGrowth = 1.01
	// histBuckets reaches 1 µs × 1.01^2100, about 20 minutes.
	histBuckets = 2100
)

var logGrowth = math.Log(histGrowth)

func newHistogram() *histogram { return &histogram{counts: make([]uint64, histBuckets)} }

func bucketOf(d time.Duration) int {
	if float64(d) <= histMin {
		return 0
	}
	b := int(math.Log(float64(d)/histMin) / logGrowth)
	return min(b, histBuckets-1)
}

func (h *histogram) add(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the bucket holding the q-quantile,
// never more than the largest value seen.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			upper := time.Duration(histMin * math.Pow(histGrowth, float64(i+1)))
			return min(upper, h.max)
		}
	}
	return h.max
}

// Latency summarises the latencies of successful onboardings (or of one
// step of an update).
type Latency struct {
	P50, P95, P99, Max, Mean time.Duration
	// Count is the number of latencies recorded.
	Count uint64
}

func (h *histogram) summary() Latency {
	l := Latency{P50: h.quantile(0.50), P95: h.quantile(0.95), P99: h.quantile(0.99), Max: h.max, Count: h.n}
	if h.n > 0 {
		l.Mean = h.sum / time.Duration(h.n)
	}
	return l
}
