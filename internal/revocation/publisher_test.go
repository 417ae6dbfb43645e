package revocation

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

var testNow = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// memSource is an in-memory RevokedSource that pages as the store does:
// by expiry then serial, after a cursor, at most pageCap a page.
type memSource struct {
	mu      sync.Mutex
	list    []store.RevokedCertificate
	pageCap int
	calls   int // reads of the first page: one per refresh
	// firsts are the cursors of the first pages read: the cut-offs.
	firsts []store.RevokedCursor
	err    error
	// gate, if not nil, is received from before each first page (after
	// the call is counted).
	gate chan struct{}
}

// add lists a certificate whose expiry is a year after its revocation.
func (s *memSource) add(serial byte, at time.Time, reason int) {
	s.addExpiring(serial, at, reason, at.AddDate(1, 0, 0))
}

func (s *memSource) addExpiring(serial byte, at time.Time, reason int, notAfter time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sn [16]byte
	sn[0], sn[15] = 0x40, serial
	s.list = append(s.list, store.RevokedCertificate{Serial: sn, RevokedAt: at, Reason: reason, NotAfter: notAfter})
	slices.SortFunc(s.list, func(a, b store.RevokedCertificate) int {
		if a.Cursor().Before(b.Cursor()) {
			return -1
		}
		return 1
	})
}

func (s *memSource) ListRevokedCertificates(ctx context.Context, after store.RevokedCursor, limit int) ([]store.RevokedCertificate, error) {
	if after.Serial == ([16]byte{}) {
		s.mu.Lock()
		s.calls++
		s.firsts = append(s.firsts, after)
		s.mu.Unlock()
		if s.gate != nil {
			<-s.gate
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.pageCap > 0 {
		limit = min(limit, s.pageCap)
	}
	i, _ := slices.BinarySearchFunc(s.list, after, func(rc store.RevokedCertificate, after store.RevokedCursor) int {
		if rc.Cursor().Before(after) || rc.Cursor() == after {
			return -1
		}
		return 1
	})
	return slices.Clone(s.list[i:min(len(s.list), i+limit)]), nil
}

func (s *memSource) callCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

func newCA(t testing.TB, suite sigalg.ID, now func() time.Time) *pki.CA {
	t.Helper()
	dir := t.TempDir()
	km, err := softkms.Open(context.Background(), filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	ca, err := pki.Open(context.Background(), km, filepath.Join(dir, "ca"), pki.Config{Suite: suite, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

type fixture struct {
	ca    *pki.CA
	src   *memSource
	clock *clock
	pub   *Publisher
}

func newFixture(t testing.TB, suite sigalg.ID) *fixture {
	t.Helper()
	f := &fixture{src: &memSource{}, clock: &clock{now: testNow}}
	f.ca = newCA(t, suite, f.clock.Now)
	pub, err := New(Config{CA: f.ca, Source: f.src, Now: f.clock.Now, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.pub = pub
	return f
}

func (f *fixture) refresh(t testing.TB) (*CRL, *pki.CRL) {
	t.Helper()
	crl, err := f.pub.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	parsed, err := pki.VerifyCRL(crl.DER, f.ca.IssuingCertificate())
	if err != nil {
		t.Fatalf("VerifyCRL: %v", err)
	}
	return crl, parsed
}

func TestPublisherEverySuite(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) {
			f := newFixture(t, suite)
			f.src.add(2, testNow.Add(-time.Hour), pki.ReasonKeyCompromise)
			f.src.add(1, testNow.Add(-2*time.Hour), pki.ReasonCertificateHold)
			crl, parsed := f.refresh(t)
			if crl.Entries != 2 || len(parsed.Entries) != 2 || parsed.Entries[0].Reason != pki.ReasonCertificateHold || parsed.Entries[1].Reason != pki.ReasonKeyCompromise {
				t.Fatalf("entries %+v", parsed.Entries)
			}
			if parsed.Number.Int64() != testNow.UnixMilli() || !parsed.ThisUpdate.Equal(testNow) || !parsed.NextUpdate.Equal(testNow.Add(DefaultValidity)) {
				t.Errorf("number %v, %v–%v", parsed.Number, parsed.ThisUpdate, parsed.NextUpdate)
			}
			if err := parsed.CheckTime(testNow.Add(time.Hour)); err != nil {
				t.Error(err)
			}
			if f.pub.Name() != f.ca.CRLName() || f.pub.Current() != crl {
				t.Error("Name or Current disagree")
			}
		})
	}
}

// TestPublisherRegeneratesOnChangeAndHalfLife: an unchanged list keeps the
// CRL (same bytes, same ETag) until half of its validity; a change, or
// half-life, makes a new one with a larger number.
func TestPublisherRegeneratesOnChangeAndHalfLife(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	first, _ := f.refresh(t)
	f.clock.Set(testNow.Add(time.Minute))
	if again, _ := f.refresh(t); again != first {
		t.Fatal("an unchanged list was signed again before half-life")
	}
	f.src.add(9, testNow.Add(30*time.Second), pki.ReasonSuperseded)
	changed, parsed := f.refresh(t)
	if changed == first || changed.ETag == first.ETag || changed.Number.Cmp(first.Number) <= 0 || len(parsed.Entries) != 1 {
		t.Fatalf("after a revocation: number %v → %v, %d entries", first.Number, changed.Number, len(parsed.Entries))
	}
	f.clock.Set(changed.ThisUpdate.Add(DefaultValidity/2 - time.Second))
	if same, _ := f.refresh(t); same != changed {
		t.Fatal("regenerated before half-life")
	}
	f.clock.Set(changed.ThisUpdate.Add(DefaultValidity / 2))
	renewed, _ := f.refresh(t)
	if renewed == changed || renewed.Number.Cmp(changed.Number) <= 0 || !renewed.NextUpdate.After(changed.NextUpdate) {
		t.Fatal("not regenerated at half-life")
	}
}

// TestCRLNumbersIncrease: numbers increase when the clock steps back and
// across a restart (a new Publisher).
func TestCRLNumbersIncrease(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	first, _ := f.refresh(t)
	f.clock.Set(testNow.Add(-time.Hour))
	f.src.add(1, testNow.Add(-2*time.Hour), pki.ReasonKeyCompromise)
	back, _ := f.refresh(t)
	if back.Number.Int64() != first.Number.Int64()+1 {
		t.Errorf("clock stepped back: number %v after %v, want +1", back.Number, first.Number)
	}
	f.clock.Set(testNow.Add(time.Second))
	restarted, err := New(Config{CA: f.ca, Source: f.src, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := restarted.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if crl.Number.Cmp(back.Number) <= 0 {
		t.Errorf("after a restart: number %v, previous %v", crl.Number, back.Number)
	}
}

// TestPublisherPagesAndFiltersFuture: every page is read, whatever the
// source's page size, and a revocation dated after now is left out until
// its time.
func TestPublisherPagesAndFiltersFuture(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	f.src.pageCap = 3
	for i := range 10 {
		f.src.add(byte(i+1), testNow.Add(-time.Minute), pki.ReasonKeyCompromise)
	}
	f.src.add(200, testNow.Add(time.Hour), pki.ReasonSuperseded)
	_, parsed := f.refresh(t)
	if len(parsed.Entries) != 10 {
		t.Fatalf("%d entries, want 10", len(parsed.Entries))
	}
	f.clock.Set(testNow.Add(time.Hour))
	if _, parsed = f.refresh(t); len(parsed.Entries) != 11 {
		t.Fatalf("%d entries once the superseded certificate's time came, want 11", len(parsed.Entries))
	}
}

// TestPublisherDropsLongExpired: an entry stays while its certificate is
// valid and for one CRL validity after it expired (so that at least one
// CRL issued after the expiry lists it, RFC 5280 5.1.2.6), and then
// leaves the CRL; the publisher asks the source for no more than that,
// so the store reads no long-expired entry.
func TestPublisherDropsLongExpired(t *testing.T) {
	f := newFixture(t, sigalg.ECDSAP256)
	revoked := testNow.Add(-time.Hour)
	f.src.addExpiring(1, revoked, pki.ReasonSuperseded, testNow.Add(-DefaultValidity-time.Second)) // expired over a validity ago
	f.src.addExpiring(2, revoked, pki.ReasonKeyCompromise, testNow.Add(-time.Minute))              // expired, still within
	f.src.add(3, revoked, pki.ReasonKeyCompromise)
	_, parsed := f.refresh(t)
	var got []byte
	for _, e := range parsed.Entries {
		got = append(got, e.Serial[15])
	}
	if !bytes.Equal(got, []byte{2, 3}) {
		t.Fatalf("CRL lists serials ending %v, want [2 3]: the long-expired one left, the others kept", got)
	}
	f.clock.Set(testNow.Add(DefaultValidity))
	if _, parsed = f.refresh(t); len(parsed.Entries) != 1 || parsed.Entries[0].Serial[15] != 3 {
		t.Fatalf("a validity later: %+v, want only the entry still valid", parsed.Entries)
	}
	f.src.mu.Lock()
	firsts := slices.Clone(f.src.firsts)
	f.src.mu.Unlock()
	want := []store.RevokedCursor{{NotAfter: testNow.Add(-DefaultValidity)}, {NotAfter: testNow}}
	if !slices.Equal(firsts, want) {
		t.Fatalf("the publisher read from %v, want the cut-offs %v (now − validity)", firsts, want)
	}
}

// TestPublisherKeepsServingOnFailure: a failing source leaves the last
// CRL in place and says why.
func TestPublisherKeepsServingOnFailure(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	if _, err := f.pub.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := f.pub.Current()
	f.src.mu.Lock()
	f.src.err = errors.New("database down")
	f.src.mu.Unlock()
	crl, err := f.pub.Refresh(context.Background())
	if err == nil || crl != good || f.pub.Current() != good {
		t.Fatalf("Refresh with a failing source: %v, CRL replaced: %v", err, crl != good)
	}
}

func TestNewRefuses(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	for name, cfg := range map[string]Config{
		"no CA":              {Source: f.src},
		"no source":          {CA: f.ca},
		"negative validity":  {CA: f.ca, Source: f.src, Validity: -time.Hour},
		"too short validity": {CA: f.ca, Source: f.src, Validity: time.Second},
		"negative poll":      {CA: f.ca, Source: f.src, Poll: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// TestRunRegeneratesOnNotify: Run publishes at once, and again when told
// of a revocation; notifications during a regeneration coalesce into one.
func TestRunRegeneratesOnNotify(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	f.src.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.pub.Run(ctx) }()
	f.src.gate <- struct{}{} // Run's first refresh reads the (empty) list
	waitFor(t, func() bool { return f.pub.Current() != nil })
	f.src.add(1, testNow, pki.ReasonKeyCompromise)
	f.pub.Notify()
	// Run is now blocked reading the list; a burst of revocations meanwhile
	// leaves one pending regeneration.
	waitFor(t, func() bool { return len(f.pub.notify) == 0 })
	for range 100 {
		f.pub.Notify()
	}
	if len(f.pub.notify) != 1 {
		t.Fatalf("%d pending notifications, want 1", len(f.pub.notify))
	}
	f.src.add(2, testNow, pki.ReasonKeyCompromise)
	f.src.gate <- struct{}{}
	f.src.gate <- struct{}{} // the one coalesced regeneration
	waitFor(t, func() bool { return f.pub.Current().Entries == 2 })
	if calls := f.src.callCount(); calls != 3 {
		t.Errorf("the list was read %d times, want 3 (start, notify, one for the burst)", calls)
	}
	cancel()
	close(f.src.gate)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// waitFor polls cond until it holds; go test's -timeout bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}
