package onboarding

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// challengeState keeps nothing: the first step is all the rate limits
// need of a State. Any other call panics on the nil State it embeds.
type challengeState struct{ State }

func (challengeState) CreateChallenge(context.Context, Challenge) error { return nil }

// limitedService is a Service with the default limits on a clock that
// stands still unless a test moves it.
func limitedService(t *testing.T) (*Service, *time.Time) {
	t.Helper()
	now := time.Now()
	svc, err := NewService(Config{State: challengeState{}, Issuer: struct{ Issuer }{}, ServerName: "hallmark.test",
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return svc, &now
}

// challenges asks n challenges for id from addr and counts those refused
// as rate-limited.
func challenges(t *testing.T, svc *Service, id identity.ID, addr string, n int) (limited int) {
	t.Helper()
	for range n {
		_, err := svc.Challenge(context.Background(), ChallengeRequest{Identity: id}, addr)
		switch {
		case errors.Is(err, ErrRateLimited):
			limited++
		case err != nil:
			t.Fatal(err)
		}
	}
	return limited
}

func testID(b byte) identity.ID {
	var id identity.ID
	id[0], id[31] = b, 0xa5
	return id
}

// A stranger claiming a device's identity from elsewhere spends only its
// own budget: the device, from its own address, gets its whole burst.
func TestClaimsFromAnotherSourceDoNotSpendTheDevicesBudget(t *testing.T) {
	svc, now := limitedService(t)
	device := testID(1)
	if limited := challenges(t, svc, device, "203.0.113.66", 100); limited != 100-(DefaultPerIdentity/2+1) {
		t.Fatalf("attacker: %d of 100 claims limited, want all past the burst of %d", limited, DefaultPerIdentity/2+1)
	}
	for range 30 { // then one every 3 s, the rate the limit refills at
		*now = now.Add(3 * time.Second)
		challenges(t, svc, device, "203.0.113.66", 1)
	}
	if limited := challenges(t, svc, device, "198.51.100.7", DefaultPerIdentity/2+1); limited != 0 {
		t.Fatalf("the device from its own address: %d of its burst limited", limited)
	}
	if limited := challenges(t, svc, device, "198.51.100.7", 1); limited != 1 {
		t.Fatal("the device's own budget is not limited past its burst")
	}
}

// One source hammering is still held to its per-address budget, whatever
// identities it claims, and other sources are not.
func TestAddressLimitHolds(t *testing.T) {
	svc, now := limitedService(t)
	burst := DefaultPerAddress/4 + 1
	allowed := 0
	for i := range 2 * burst {
		if challenges(t, svc, testID(byte(i)), "2001:db8:1:2::66", 1) == 0 {
			allowed++
		}
	}
	if allowed != burst {
		t.Fatalf("one source, rotating identities: %d allowed, want the burst %d", allowed, burst)
	}
	// Another address in the same /64 is the same source.
	if challenges(t, svc, testID(200), "2001:db8:1:2::67", 1) != 1 {
		t.Fatal("a neighbour in the same IPv6 /64 drew a fresh budget")
	}
	if challenges(t, svc, testID(200), "2001:db8:1:3::66", 1) != 0 {
		t.Fatal("another /64 is limited too")
	}
	*now = now.Add(time.Second) // 10 tokens at 600 a minute
	if limited := challenges(t, svc, testID(201), "2001:db8:1:2::66", 12); limited != 2 {
		t.Fatalf("after 1 s: %d of 12 limited, want 2", limited)
	}
}

// A client retrying past its limit for one identity does not drain the
// budget of the address it may share with other devices.
func TestClaimLimitSparesTheSharedAddress(t *testing.T) {
	svc, _ := limitedService(t)
	nat := "192.0.2.44"
	challenges(t, svc, testID(1), nat, 500)
	if limited := challenges(t, svc, testID(2), nat, DefaultPerIdentity/2+1); limited != 0 {
		t.Fatalf("a neighbour behind the same address: %d limited", limited)
	}
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(20, 3, 10)
	t0 := time.Now()
	for i := range 3 {
		if !l.allow("k", t0) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allow("k", t0) || l.allow("k", t0.Add(2*time.Second)) {
		t.Fatal("allowed past the burst before a token refilled")
	}
	if !l.allow("k", t0.Add(3*time.Second+time.Millisecond)) {
		t.Fatal("no token after 3 s at 20 a minute")
	}
	if l.allow("k", t0.Add(-time.Hour)) {
		t.Fatal("a clock stepping back refilled the bucket")
	}
}

// However fast keys rotate, the table stays within its bound, and the
// buckets that matter (limited ones) are dropped last.
func TestLimiterBoundedUnderRotation(t *testing.T) {
	const maxKeys = 1000
	l := newLimiter(20, 11, maxKeys)
	t0 := time.Now()
	for range 11 {
		l.allow("victim-limited", t0)
	}
	for i := range maxKeys - 1 {
		l.allow(fmt.Sprint("rotating-", i), t0)
	}
	// 4 s on, the rotating keys have refilled completely; the limited key
	// has 1⅓ tokens. A new key sweeps the full buckets away and keeps it.
	t1 := t0.Add(4 * time.Second)
	l.allow("new", t1)
	if n := l.size(); n != 2 {
		t.Fatalf("%d buckets after the sweep, want the limited one and the new one", n)
	}
	if !l.allow("victim-limited", t1) || l.allow("victim-limited", t1) {
		t.Fatal("the limited key's bucket was forgotten")
	}
	// Keys rotating with no time passing: nothing refills, so arbitrary
	// buckets go, a quarter of the table at a time.
	sweeps := 0
	for i := range 100 * maxKeys {
		before := l.size()
		l.allow(fmt.Sprint("flood-", i), t1)
		if after := l.size(); after < before {
			sweeps++
		}
		if n := l.size(); n > maxKeys {
			t.Fatalf("%d buckets, bound %d", n, maxKeys)
		}
	}
	if sweeps > 100*maxKeys/(maxKeys/4)+1 {
		t.Fatalf("%d sweeps for %d new keys: each sweep must free a quarter of the table", sweeps, 100*maxKeys)
	}
}

func TestSourceKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:a:b:1:2:3:4", "2001:db8:a:b::/64"},
		{"2001:db8:a:b::ffff", "2001:db8:a:b::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := sourceKey(c.addr); got != c.want {
			t.Errorf("sourceKey(%q) = %q, want %q", c.addr, got, c.want)
		}
	}
}
