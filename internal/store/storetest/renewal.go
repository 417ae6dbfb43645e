package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The renewal policy of issue 12 (store.Renewals): a product's renewal
// window, checked in the renewal's transaction; grants that let one
// renewal outside it; and the sweep revoking superseded certificates.

// renewalWindow is the window of the tests: newCert's certificates are
// valid a year, so a renewal is due 30 days before that.
const renewalWindow = 30 * 24 * time.Hour

// testRenewalWindowProduct: a product's renewal window is kept.
func testRenewalWindowProduct(t *testing.T, f *fixture) {
	p := store.Product{ID: "windowed", Name: "Windowed", CertValidity: 90 * 24 * time.Hour,
		CloudEndpoint: "mqtts://broker.example.com", CreatedAt: at(time.Minute), RenewalWindow: 30*24*time.Hour + 1500*time.Millisecond}
	must(t, f.s.CreateProduct(f.ctx, p))
	got, err := f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct", got, p)
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	equal(t, "ListProducts", list, []store.Product{f.product, p})
}

// testRenewalWindow: a renewal before the current certificate is due is
// refused, saying when it will be, and changes nothing; at the due time
// it succeeds, and the new certificate's window starts over. No window
// allows a renewal at any time; the issuance limit still applies.
func testRenewalWindow(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "window", store.StateOnboarded)
	current := d.certs[len(d.certs)-1]
	terms := store.RenewalTerms{Window: renewalWindow}
	before := f.snapshot(t, d.id)
	_, err := f.s.RenewCertificate(f.ctx, newCert(d.id, 10, at(5*time.Hour)), at(5*time.Hour), terms)
	var notDue *store.RenewalNotDueError
	if !errors.As(err, &notDue) || !errors.Is(err, store.ErrRenewalNotDue) || !notDue.DueAt.Equal(current.NotAfter.Add(-renewalWindow)) {
		t.Fatalf("renewal before the window: %v; want a RenewalNotDueError due at %v", err, current.NotAfter.Add(-renewalWindow))
	}
	equal(t, "after a renewal refused as not due", f.snapshot(t, d.id), before)

	due := current.NotAfter.Add(-renewalWindow)
	next := newCert(d.id, 11, due)
	forced, err := f.s.RenewCertificate(f.ctx, next, due, terms)
	if err != nil || forced {
		t.Fatalf("renewal at the due time: forced %v, %v", forced, err)
	}
	equal(t, "after the renewal", supersededAt(t, f, d.id)[next.Serial], "current")
	_, err = f.s.RenewCertificate(f.ctx, newCert(d.id, 12, due.Add(time.Hour)), due.Add(time.Hour), terms)
	wantErr(t, "a second renewal right after", err, store.ErrRenewalNotDue)

	_, err = f.s.RenewCertificate(f.ctx, newCert(d.id, 13, due.Add(time.Hour)), due.Add(time.Hour), store.RenewalTerms{})
	must(t, err)
	limited := store.RenewalTerms{Limit: store.IssuanceLimit{Max: 1, Window: time.Hour}}
	_, err = f.s.RenewCertificate(f.ctx, newCert(d.id, 14, due.Add(time.Hour)), due.Add(time.Hour), limited)
	wantErr(t, "a renewal over the issuance limit", err, store.ErrIssuanceLimit)

	for _, state := range []store.DeviceState{store.StateSuspended, store.StateRevoked} {
		other := f.deviceIn(t, "window-"+string(state), state)
		_, err := f.s.RenewCertificate(f.ctx, newCert(other.id, 20, at(5*time.Hour)), at(5*time.Hour), terms)
		wantErr(t, "a renewal of a "+string(state)+" device", err, store.ErrConflict)
	}
	_, err = f.s.RenewCertificate(f.ctx, newCert(identity.FromSPKI([]byte("unknown")), 21, at(5*time.Hour)), at(5*time.Hour), terms)
	wantErr(t, "a renewal of an unknown device", err, store.ErrNotFound)
}

// testRenewalGrant: a grant lets the device's next renewal through
// outside the window, once; a refused renewal leaves it; a renewal in the
// window consumes it too. Only an onboarded device can be granted one.
func testRenewalGrant(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "grant", store.StateOnboarded)
	terms := store.RenewalTerms{Window: renewalWindow}
	_, err := f.s.GetRenewalGrant(f.ctx, d.id)
	wantErr(t, "GetRenewalGrant before any", err, store.ErrNotFound)
	g := store.RenewalGrant{Identity: d.id, GrantedAt: at(5 * time.Hour), Reason: "key rotation"}
	must(t, f.s.GrantRenewal(f.ctx, store.RenewalGrant{Identity: d.id, GrantedAt: at(4 * time.Hour), Reason: "first"}))
	must(t, f.s.GrantRenewal(f.ctx, g)) // replaces the first
	got, err := f.s.GetRenewalGrant(f.ctx, d.id)
	must(t, err)
	equal(t, "GetRenewalGrant", got, g)

	taken := newCert(d.id, 30, at(6*time.Hour))
	taken.Serial = d.certs[0].Serial
	_, err = f.s.RenewCertificate(f.ctx, taken, at(6*time.Hour), terms)
	wantErr(t, "a forced renewal with a taken serial", err, store.ErrExists)
	if _, err := f.s.GetRenewalGrant(f.ctx, d.id); err != nil {
		t.Fatalf("the grant after a refused renewal: %v; want it pending", err)
	}
	forced, err := f.s.RenewCertificate(f.ctx, newCert(d.id, 31, at(6*time.Hour)), at(6*time.Hour), terms)
	if err != nil || !forced {
		t.Fatalf("a renewal outside the window with a grant: forced %v, %v; want forced", forced, err)
	}
	_, err = f.s.GetRenewalGrant(f.ctx, d.id)
	wantErr(t, "GetRenewalGrant after the forced renewal", err, store.ErrNotFound)
	_, err = f.s.RenewCertificate(f.ctx, newCert(d.id, 32, at(7*time.Hour)), at(7*time.Hour), terms)
	wantErr(t, "a second renewal outside the window", err, store.ErrRenewalNotDue)

	// A renewal that was due anyway consumes the grant, unforced.
	must(t, f.s.GrantRenewal(f.ctx, g))
	forced, err = f.s.RenewCertificate(f.ctx, newCert(d.id, 33, at(7*time.Hour)), at(7*time.Hour), store.RenewalTerms{})
	if err != nil || forced {
		t.Fatalf("a renewal without a window: forced %v, %v", forced, err)
	}
	_, err = f.s.GetRenewalGrant(f.ctx, d.id)
	wantErr(t, "GetRenewalGrant after a renewal that was due", err, store.ErrNotFound)

	for _, state := range []store.DeviceState{store.StateRegistered, store.StateSuspended, store.StateRevoked, store.StateDecommissioned} {
		other := f.deviceIn(t, "grant-"+string(state), state)
		err := f.s.GrantRenewal(f.ctx, store.RenewalGrant{Identity: other.id, GrantedAt: at(5 * time.Hour), Reason: "x"})
		var refused *store.StateError
		if !errors.As(err, &refused) || refused.State != state || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a grant to a %s device: %v; want a StateError naming the state", state, err)
		}
	}
	err = f.s.GrantRenewal(f.ctx, store.RenewalGrant{Identity: identity.FromSPKI([]byte("unknown")), GrantedAt: at(5 * time.Hour), Reason: "x"})
	wantErr(t, "a grant to an unknown device", err, store.ErrNotFound)
}

// testRenewalGrantRace: of concurrent renewals outside the window with
// one grant, exactly one succeeds; the others are not due.
func testRenewalGrantRace(t *testing.T, f *fixture) {
	for r := range 4 {
		d := f.deviceIn(t, fmt.Sprintf("grant-race-%d", r), store.StateOnboarded)
		must(t, f.s.GrantRenewal(f.ctx, store.RenewalGrant{Identity: d.id, GrantedAt: at(5 * time.Hour), Reason: "race"}))
		errs := race(4, func(i int) error {
			_, err := f.s.RenewCertificate(f.ctx, newCert(d.id, 100+i, at(6*time.Hour)), at(6*time.Hour), store.RenewalTerms{Window: renewalWindow})
			return err
		})
		if n := wins(t, errs, store.ErrRenewalNotDue, "renewals racing for one grant"); n != 1 {
			t.Fatalf("round %d: %d renewals went through with one grant, want 1", r, n)
		}
	}
}

// testRevokeSuperseded: the sweep revokes, oldest first and in batches,
// the superseded certificates superseded by the cut-off that are good or
// on hold, with reason superseded; it leaves current certificates, those
// superseded later and those revoked for another reason as they are, and
// a second run finds nothing. Resuming a device does not release a
// superseded certificate.
func testRevokeSuperseded(t *testing.T, f *fixture) {
	onboarded := f.deviceIn(t, "sweep-onboarded", store.StateOnboarded) // first certificate superseded at 3h
	suspended := f.deviceIn(t, "sweep-suspended", store.StateSuspended) // both on hold
	revoked := f.deviceIn(t, "sweep-revoked", store.StateRevoked)       // both key compromise
	later := f.deviceIn(t, "sweep-later", store.StateOnboarded)
	must(t, f.s.RecordOnboarding(f.ctx, newCert(later.id, 3, at(8*time.Hour)), at(8*time.Hour)))

	n, err := f.s.RevokeSuperseded(f.ctx, at(2*time.Hour), at(9*time.Hour), 0)
	if err != nil || n != 0 {
		t.Fatalf("sweep before any supersession: %d, %v", n, err)
	}
	total := 0
	for range 5 {
		n, err := f.s.RevokeSuperseded(f.ctx, at(3*time.Hour), at(9*time.Hour), 1)
		must(t, err)
		if n > 1 {
			t.Fatalf("a sweep of limit 1 revoked %d", n)
		}
		total += n
	}
	if total != 3 {
		t.Fatalf("sweeps revoked %d certificates, want 3 (each good or held device's first)", total)
	}
	reasons := func(id identity.ID) map[[16]byte]int {
		certs, err := f.s.ListCertificates(f.ctx, id)
		must(t, err)
		out := map[[16]byte]int{}
		for _, c := range certs {
			out[c.Serial] = -1
			if !c.RevokedAt.IsZero() {
				out[c.Serial] = c.RevocationReason
			}
		}
		return out
	}
	first, second := func(d lifecycleDevice) [16]byte { return d.certs[0].Serial }, func(d lifecycleDevice) [16]byte { return d.certs[1].Serial }
	equal(t, "onboarded device", reasons(onboarded.id), map[[16]byte]int{first(onboarded): store.ReasonSuperseded, second(onboarded): -1})
	equal(t, "suspended device", reasons(suspended.id), map[[16]byte]int{first(suspended): store.ReasonSuperseded, second(suspended): store.ReasonCertificateHold})
	equal(t, "revoked device", reasons(revoked.id), map[[16]byte]int{first(revoked): store.ReasonKeyCompromise, second(revoked): store.ReasonKeyCompromise})
	equal(t, "device superseded after the cut-off", reasons(later.id), map[[16]byte]int{first(later): store.ReasonSuperseded, second(later): -1, newCert(later.id, 3, at(0)).Serial: -1})
	got, err := f.s.GetCertificate(f.ctx, first(onboarded))
	must(t, err)
	equal(t, "revocation time", got.RevokedAt, at(9*time.Hour).UTC())

	page, err := f.s.ListRevokedCertificates(f.ctx, store.RevokedCursor{}, 0)
	must(t, err)
	listed := 0
	for _, rc := range page {
		if rc.Serial == first(onboarded) && rc.Reason == store.ReasonSuperseded && rc.RevokedAt.Equal(at(9*time.Hour)) {
			listed++
		}
	}
	if listed != 1 {
		t.Fatalf("ListRevokedCertificates does not list the superseded certificate: %+v", page)
	}
	_, err = f.s.TransitionDevice(f.ctx, suspended.id, store.TransitionRequest{Transition: store.TransitionResume, Reason: "ok", At: at(10 * time.Hour)})
	must(t, err)
	equal(t, "resumed device", reasons(suspended.id), map[[16]byte]int{first(suspended): store.ReasonSuperseded, second(suspended): -1})
}

// testRevokeSupersededConcurrently: sweeps running at once (replicas)
// revoke every pending certificate exactly once between them.
func testRevokeSupersededConcurrently(t *testing.T, f *fixture) {
	const devices = 24
	for i := range devices {
		f.deviceIn(t, fmt.Sprintf("sweep-race-%d", i), store.StateOnboarded)
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				n, err := f.s.RevokeSuperseded(f.ctx, at(3*time.Hour), at(9*time.Hour), 5)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				total.Add(int64(n))
			}
		})
	}
	wg.Wait()
	if total.Load() != devices {
		t.Fatalf("concurrent sweeps revoked %d certificates, want %d", total.Load(), devices)
	}
}
