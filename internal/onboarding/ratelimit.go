package onboarding

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// limiter is a token bucket per key (a client address, or an identity
// claimed from one address): each key may make burst requests at once
// and refills at rate per second.
//
// The table is bounded by maxKeys. When it is full, buckets that have
// refilled completely are dropped, since forgetting them changes nothing;
// if that frees less than a quarter of the table, arbitrary buckets go
// too, which at worst grants a burst again to keys that were limited. So a
// sweep costs O(maxKeys) and leaves room for at least maxKeys/4 new keys:
// constant work per request on average however fast keys rotate.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	maxKeys int
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute, burst, maxKeys int) *limiter {
	return &limiter{rate: float64(perMinute) / 60, burst: float64(burst), maxKeys: maxKeys, buckets: map[string]bucket{}}
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
		b = bucket{tokens: l.burst, last: now}
	}
	if now.After(b.last) {
		b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
		b.last = now
	}
	ok = b.tokens >= 1
	if ok {
		b.tokens--
	}
	l.buckets[key] = b
	return ok
}

// sweep makes room for at least a quarter of the table.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	keep := l.maxKeys - max(l.maxKeys/4, 1)
	for k := range l.buckets {
		if len(l.buckets) <= keep {
			break
		}
		delete(l.buckets, k)
	}
}

// size is the number of buckets held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// allow applies the rate limits to a request from addr that claims id,
// spending a token of each. The claim is checked first, so a client
// retrying past its limit for one identity does not also spend the budget
// of the address it may share with other devices (a NAT).
func (s *Service) allow(id identity.ID, addr string, now time.Time) bool {
	source := sourceKey(addr)
	return s.byClaim.allow(claimKey(id, source), now) && s.byAddress.allow(source, now)
}

// sourceKey names the source a request is limited by: its IPv4 address,
// or the /64 prefix of its IPv6 address, since one subscriber is commonly
// given a whole /64 and could otherwise draw a fresh budget from each of
// its addresses. An address that does not parse is its own key.
func sourceKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip.WithZone(""), 64).Masked().String()
	}
	return ip.String()
}

// claimKey names an identity claimed from a source: each source has its
// own budget for each identity, so a stranger elsewhere cannot spend a
// device's.
func claimKey(id identity.ID, source string) string {
	return string(id[:]) + source
}
