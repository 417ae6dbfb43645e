package onboarding

import (
	"sync"
	"time"
)

// limiter is a token bucket per key (an identity or a client address):
// each key may make burst requests at once and refills at rate per second.
// The table is bounded: when it is full, buckets that have refilled
// completely are dropped, since forgetting them changes nothing.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	maxKeys int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute, burst, maxKeys int) *limiter {
	return &limiter{rate: float64(perMinute) / 60, burst: float64(burst), maxKeys: maxKeys, buckets: map[string]*bucket{}}
}

// allow spends one token of key's bucket, reporting whether there was one.
func (l *limiter) allow(key string, now time.Time) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops full buckets; if none is full, it drops all, which at worst
// grants a burst again to keys that were limited.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.maxKeys {
		clear(l.buckets)
	}
}
