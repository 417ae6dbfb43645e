package httpapi

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
)

// AuthLimit is the back-off on failed admin authentication, per client
// address (an IPv6 client by its /64, which one host commonly holds
// whole). After Failures failed authentications within Window, the
// address is locked out for Lockout: every admin request from it is
// answered 429 rate-limited with Retry-After, before its token is looked
// up and without an audit event of its own. Each failure after a
// lock-out locks the address again at once, for twice as long as the
// last time, up to MaxLockout; an address that has not failed for
// MaxLockout after its last lock-out ended starts afresh. A success never clears a failure: a valid
// token used from a shared address does not buy an attacker there more
// guesses.
type AuthLimit struct {
	// Failures allowed per Window; zero selects DefaultAuthFailures,
	// negative disables the limit.
	Failures int
	// Window, Lockout and MaxLockout: zero selects the default.
	Window, Lockout, MaxLockout time.Duration
}

// Defaults of AuthLimit.
const (
	DefaultAuthFailures   = 10
	DefaultAuthWindow     = time.Minute
	DefaultAuthLockout    = time.Minute
	DefaultMaxAuthLockout = 30 * time.Minute
	// maxThrottledAddresses bounds the table of addresses (about 100
	// bytes each).
	maxThrottledAddresses = 100_000
)

func (l AuthLimit) withDefaults() AuthLimit {
	if l.Failures == 0 {
		l.Failures = DefaultAuthFailures
	}
	if l.Window <= 0 {
		l.Window = DefaultAuthWindow
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultAuthLockout
	}
	if l.MaxLockout <= 0 {
		l.MaxLockout = DefaultMaxAuthLockout
	}
	l.MaxLockout = max(l.MaxLockout, l.Lockout)
	return l
}

// authThrottle keeps AuthLimit; a nil one limits nothing.
type authThrottle struct {
	limit  AuthLimit
	mu     sync.Mutex
	byAddr map[string]*authRecord
}

type authRecord struct {
	windowStart time.Time
	failures    int // in the window starting at windowStart
	lockedUntil time.Time
	strikes     int // lock-outs since the address last went quiet
}

func newAuthThrottle(l AuthLimit) *authThrottle {
	l = l.withDefaults()
	if l.Failures < 0 {
		return nil
	}
	return &authThrottle{limit: l, byAddr: map[string]*authRecord{}}
}

// throttleKey is what an address is limited by: an IPv4 address, or an
// IPv6 address's /64.
func throttleKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Is4() {
		return addr
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// lockedFor returns how long addr remains locked out; zero when it is not.
func (t *authThrottle) lockedFor(addr string, now time.Time) time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.byAddr[throttleKey(addr)]
	if rec == nil || !now.Before(rec.lockedUntil) {
		return 0
	}
	return rec.lockedUntil.Sub(now)
}

// fail counts a failed authentication from addr, locking it out when it
// has failed too often.
func (t *authThrottle) fail(addr string, now time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.record(throttleKey(addr), now)
	if rec == nil {
		return
	}
	if rec.strikes > 0 && now.Sub(rec.lockedUntil) >= t.limit.MaxLockout {
		rec.strikes = 0
	}
	if rec.strikes > 0 {
		t.lock(rec, now)
		return
	}
	if now.Sub(rec.windowStart) >= t.limit.Window {
		rec.windowStart, rec.failures = now, 0
	}
	rec.failures++
	if rec.failures >= t.limit.Failures {
		t.lock(rec, now)
	}
}

// lock locks rec out for the lock-out its strikes have earned.
func (t *authThrottle) lock(rec *authRecord, now time.Time) {
	d := t.limit.Lockout
	for i := 0; i < rec.strikes && d < t.limit.MaxLockout; i++ {
		d *= 2
	}
	rec.lockedUntil = now.Add(min(d, t.limit.MaxLockout))
	rec.strikes++
	rec.failures = 0
}

// record returns key's record, making one; t.mu is held. When the table
// is full it forgets the addresses that are neither locked nor
// remembered for a recent lock-out, then any that are not locked; if
// every one is locked, the new address goes untracked (nil).
func (t *authThrottle) record(key string, now time.Time) *authRecord {
	if rec := t.byAddr[key]; rec != nil {
		return rec
	}
	if len(t.byAddr) >= maxThrottledAddresses {
		t.sweep(now)
	}
	if len(t.byAddr) >= maxThrottledAddresses {
		return nil
	}
	rec := &authRecord{windowStart: now}
	t.byAddr[key] = rec
	return rec
}

func (t *authThrottle) sweep(now time.Time) {
	for k, rec := range t.byAddr {
		quiet := rec.strikes == 0 || now.Sub(rec.lockedUntil) >= t.limit.MaxLockout
		if !now.Before(rec.lockedUntil) && quiet {
			delete(t.byAddr, k)
		}
	}
	for k, rec := range t.byAddr {
		if len(t.byAddr) < maxThrottledAddresses*9/10 {
			return
		}
		if !now.Before(rec.lockedUntil) {
			delete(t.byAddr, k)
		}
	}
}

// initAuthDefences sets up the refusal aggregator and the authentication
// back-off of cfg.
func (s *Server) initAuthDefences(cfg Config) error {
	s.authLimit = newAuthThrottle(cfg.AuthLimit)
	s.refusals = cfg.Refusals
	if s.refusals != nil {
		return nil
	}
	var err error
	s.refusals, err = audit.New(audit.Config{Store: cfg.Audit, Metrics: s.metrics, Now: s.now, Log: s.log})
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	return nil
}

// Refusals is the aggregator of refused anonymous admin requests.
func (s *Server) Refusals() *audit.Aggregator { return s.refusals }
