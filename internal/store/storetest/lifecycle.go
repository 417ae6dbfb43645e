package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// revokedAs is d as a revocation at at for note leaves it.
func revokedAs(d store.Device, at time.Time, note string) store.Device {
	d.State, d.RevokedAt, d.RevokeNote = store.StateRevoked, at, note
	d.StateChangedAt, d.StateReason = at, note
	return d
}

func deregisterJob(connector string) []store.Job {
	return []store.Job{{Kind: store.JobDeregister, Connector: connector}}
}

// lifecycleDevice is a device brought into a state for a test, with its
// two certificates (the first superseded by the second) if it was ever
// onboarded.
type lifecycleDevice struct {
	id    identity.ID
	certs []store.Certificate
}

// deviceIn imports a device and brings it into state through the
// transitions that lead there, at times before at(10h).
func (f *fixture) deviceIn(t *testing.T, seed string, state store.DeviceState) lifecycleDevice {
	t.Helper()
	devices := makeDevices(seed, 1)
	f.mustImport(t, f.batch(seed, "m-"+seed), devices)
	d := lifecycleDevice{id: devices[0].Identity}
	if state == store.StateRegistered {
		return d
	}
	for i, h := range []time.Duration{2 * time.Hour, 3 * time.Hour} {
		c := newCert(d.id, i+1, at(h))
		must(t, f.s.RecordOnboarding(f.ctx, c, at(h)))
		d.certs = append(d.certs, c)
	}
	via := map[store.DeviceState]store.Transition{
		store.StateSuspended: store.TransitionSuspend, store.StateRevoked: store.TransitionRevoke,
		store.StateDecommissioned: store.TransitionDecommission,
	}
	if tr, ok := via[state]; ok {
		_, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: tr, Reason: "setup", At: at(4 * time.Hour)})
		must(t, err)
	}
	if state == store.StateMigrated {
		f.migrated(t, d, seed) // lineage.go
	}
	return d
}

// snapshot is everything a transition may change.
type snapshot struct {
	Device store.Device
	Certs  []store.Certificate
	Jobs   []store.Job
}

func (f *fixture) snapshot(t *testing.T, id identity.ID) snapshot {
	t.Helper()
	d, err := f.s.GetDevice(f.ctx, id)
	must(t, err)
	certs, err := f.s.ListCertificates(f.ctx, id)
	must(t, err)
	jobs, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: id})
	must(t, err)
	return snapshot{d, certs, jobs}
}

// testTransitions tries every transition from every state: an allowed one
// moves the device, changes its certificates as the transition says and
// enqueues the jobs asked for given the device as it was; one into the
// state the device is in changes nothing; any other is a *TransitionError
// naming the state, and changes nothing.
func testTransitions(t *testing.T, f *fixture) {
	n := 0
	for _, tr := range store.Transitions {
		for _, from := range store.DeviceStates {
			n++
			t.Run(fmt.Sprintf("%s from %s", tr, from), func(t *testing.T) {
				d := f.deviceIn(t, fmt.Sprintf("transition-%d", n), from)
				before := f.snapshot(t, d.id)
				var seen []store.Device
				res, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: tr, Reason: "because", At: at(10 * time.Hour),
					Jobs: func(b store.Device) []store.Job { seen = append(seen, b); return deregisterJob("mqtt") }})
				switch {
				case from == tr.To():
					must(t, err)
					if res.Changed || res.From != from {
						t.Errorf("result %+v, want unchanged from %s", res, from)
					}
					equal(t, "device in the target state already", f.snapshot(t, d.id), before)
				case !tr.Allowed(from):
					var te *store.TransitionError
					if !errors.As(err, &te) || te.State != from || te.Transition != tr ||
						!errors.Is(err, store.ErrTransitionNotAllowed) || !errors.Is(err, store.ErrConflict) {
						t.Fatalf("err = %v, want a *TransitionError naming %s", err, from)
					}
					equal(t, "device after a refused transition", f.snapshot(t, d.id), before)
				default:
					must(t, err)
					checkTransitioned(t, f, d, tr, before, res, seen)
				}
			})
		}
	}
	_, err := f.s.TransitionDevice(f.ctx, identity.ID{7}, store.TransitionRequest{Transition: store.TransitionSuspend, At: at(0)})
	wantErr(t, "TransitionDevice(unknown device)", err, store.ErrNotFound)
	d := f.deviceIn(t, "transition-bogus", store.StateOnboarded)
	if _, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: "explode", At: at(0)}); err == nil {
		t.Fatal("an unknown transition succeeded")
	}
}

// checkTransitioned checks what an allowed transition did.
func checkTransitioned(t *testing.T, f *fixture, d lifecycleDevice, tr store.Transition, before snapshot, res store.TransitionResult, seen []store.Device) {
	t.Helper()
	after := f.snapshot(t, d.id)
	want := before.Device
	want.State, want.StateChangedAt, want.StateReason = tr.To(), at(10*time.Hour), "because"
	switch tr {
	case store.TransitionRevoke:
		want.RevokedAt, want.RevokeNote = at(10*time.Hour), "because"
	case store.TransitionReprovision:
		want.OnboardedAt = time.Time{}
	}
	equal(t, "device after the transition", after.Device, want)
	equal(t, "result's device", res.Device, want)
	if !res.Changed || res.From != before.Device.State {
		t.Errorf("result %+v, want changed from %s", res, before.Device.State)
	}
	if len(seen) != 1 {
		t.Fatalf("Jobs called %d times, want once", len(seen))
	}
	equal(t, "device given to Jobs", seen[0], before.Device)
	if len(after.Jobs) != len(before.Jobs)+1 || after.Jobs[0].Kind != store.JobDeregister || after.Jobs[0].Connector != "mqtt" {
		t.Errorf("jobs after: %+v, want one more deregister job for mqtt", after.Jobs)
	}
	wantCerts := slices.Clone(before.Certs)
	for i := range wantCerts {
		c := &wantCerts[i]
		if reason, ok := tr.CertificateReason(); ok && (c.RevokedAt.IsZero() || c.RevocationReason == store.ReasonCertificateHold) {
			c.RevokedAt, c.RevocationReason = at(10*time.Hour), reason
		}
		if tr.ReleasesHold() && c.RevocationReason == store.ReasonCertificateHold {
			c.RevokedAt, c.RevocationReason = time.Time{}, 0
		}
	}
	equal(t, "certificates after the transition", after.Certs, wantCerts)
}

// testLifecycleCertificates follows one device through its life and its
// certificates with it: held, released, revoked for good with the
// transition's reason (one revoked otherwise keeps its own), and refused
// new ones until it is reprovisioned, when it onboards afresh.
func testLifecycleCertificates(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "life", store.StateOnboarded)
	move := func(tr store.Transition, h time.Duration) {
		t.Helper()
		_, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: tr, Reason: string(tr), At: at(h)})
		must(t, err)
	}
	certsAre := func(what string, revokedAt time.Time, reason int) {
		t.Helper()
		got, err := f.s.ListCertificates(f.ctx, d.id)
		must(t, err)
		for _, c := range got[len(got)-len(d.certs):] {
			if !c.RevokedAt.Equal(revokedAt) || c.RevocationReason != reason {
				t.Fatalf("%s: certificate %x revoked at %v for %d, want %v for %d", what, c.Serial[:4], c.RevokedAt, c.RevocationReason, revokedAt, reason)
			}
		}
	}
	refused := func(state store.DeviceState, serial int) {
		t.Helper()
		err := f.s.RecordRenewal(f.ctx, newCert(d.id, serial, at(20*time.Hour)), at(20*time.Hour), store.IssuanceLimit{})
		var se *store.StateError
		if !errors.As(err, &se) || se.State != state || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("renewal of a %s device: %v, want a *StateError naming %s", state, err, state)
		}
	}
	move(store.TransitionSuspend, 5*time.Hour)
	certsAre("suspended", at(5*time.Hour), store.ReasonCertificateHold)
	refused(store.StateSuspended, 10)
	move(store.TransitionResume, 6*time.Hour)
	certsAre("resumed", time.Time{}, 0)
	move(store.TransitionSuspend, 7*time.Hour)
	move(store.TransitionDecommission, 8*time.Hour)
	certsAre("decommissioned", at(8*time.Hour), store.ReasonCessationOfOperation)
	refused(store.StateDecommissioned, 11)
	move(store.TransitionReprovision, 9*time.Hour)
	certsAre("reprovisioned", at(8*time.Hour), store.ReasonCessationOfOperation)
	if dev, err := f.s.GetDevice(f.ctx, d.id); err != nil || dev.State != store.StateRegistered || !dev.OnboardedAt.IsZero() {
		t.Fatalf("reprovisioned device: %+v, %v; want registered, never onboarded", dev, err)
	}
	fresh := newCert(d.id, 12, at(11*time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, fresh, at(11*time.Hour)))
	if dev, err := f.s.GetDevice(f.ctx, d.id); err != nil || dev.State != store.StateOnboarded || !dev.OnboardedAt.Equal(at(11*time.Hour)) {
		t.Fatalf("device onboarded afresh: %+v, %v; want onboarded at the new onboarding", dev, err)
	}
	certsAre("old certificates after a fresh onboarding", at(8*time.Hour), store.ReasonCessationOfOperation)
	if got, err := f.s.GetCertificate(f.ctx, fresh.Serial); err != nil || !got.RevokedAt.IsZero() || got.RevocationReason != 0 {
		t.Fatalf("fresh certificate: %+v, %v; want good", got, err)
	}
	// A certificate revoked on its own keeps its time and reason when the
	// device is revoked; the rest are revoked for key compromise.
	own := newCert(d.id, 13, at(12*time.Hour))
	own.RevokedAt = at(12 * time.Hour)
	must(t, f.s.RecordRenewal(f.ctx, own, at(12*time.Hour), store.IssuanceLimit{}))
	move(store.TransitionRevoke, 13*time.Hour)
	refused(store.StateRevoked, 14)
	for serial, want := range map[[16]byte]store.RevokedCertificate{
		own.Serial:   {RevokedAt: at(12 * time.Hour), Reason: store.ReasonUnspecified},
		fresh.Serial: {RevokedAt: at(13 * time.Hour), Reason: store.ReasonKeyCompromise},
	} {
		got, err := f.s.GetCertificate(f.ctx, serial)
		if err != nil || !got.RevokedAt.Equal(want.RevokedAt) || got.RevocationReason != want.Reason {
			t.Errorf("certificate %x after revocation: %v for %d, %v; want %v for %d", serial[:4], got.RevokedAt, got.RevocationReason, err, want.RevokedAt, want.Reason)
		}
	}
}

// testListRevokedCertificates checks the CRL's read: revoked and held
// certificates only, by expiry then serial bytes, one page after another,
// from a cut-off that leaves out those expired before it.
func testListRevokedCertificates(t *testing.T, f *fixture) {
	var want []store.RevokedCertificate
	for i, c := range []struct {
		state  store.DeviceState
		reason int
	}{
		{store.StateOnboarded, -1}, {store.StateSuspended, store.ReasonCertificateHold},
		{store.StateRevoked, store.ReasonKeyCompromise}, {store.StateDecommissioned, store.ReasonCessationOfOperation},
		{store.StateOnboarded, -1}, {store.StateRevoked, store.ReasonKeyCompromise},
	} {
		d := f.deviceIn(t, fmt.Sprintf("crl-%d", i), c.state)
		for _, cert := range d.certs {
			if c.reason >= 0 {
				want = append(want, store.RevokedCertificate{Serial: cert.Serial, RevokedAt: at(4 * time.Hour).UTC(), Reason: c.reason, NotAfter: cert.NotAfter.UTC()})
			}
		}
	}
	// Suspended and resumed: good again, not listed.
	resumed := f.deviceIn(t, "crl-resumed", store.StateSuspended)
	_, err := f.s.TransitionDevice(f.ctx, resumed.id, store.TransitionRequest{Transition: store.TransitionResume, At: at(5 * time.Hour)})
	must(t, err)
	// Each device has two certificates, issued an hour apart: two
	// expiries, each shared by several serials.
	slices.SortFunc(want, func(a, b store.RevokedCertificate) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return bytes.Compare(a.Serial[:], b.Serial[:])
	})

	all, err := f.s.ListRevokedCertificates(f.ctx, store.RevokedCursor{}, 0)
	must(t, err)
	equal(t, "ListRevokedCertificates", all, want)
	equal(t, "ListRevokedCertificates by pages of 3", revokedPages(t, f, store.RevokedCursor{}, 3), want)
	last, err := f.s.ListRevokedCertificates(f.ctx, want[len(want)-1].Cursor(), store.MaxRevokedPageSize+1)
	must(t, err)
	if len(last) != 0 {
		t.Fatalf("after the last entry: %d entries, want none", len(last))
	}

	// A cut-off between the two expiries, and one exactly at the later:
	// only the certificates issued later, still by pages.
	later := want[len(want)/2:]
	if !later[0].NotAfter.After(want[0].NotAfter) || !later[0].NotAfter.Equal(later[len(later)-1].NotAfter) {
		t.Fatalf("fixture: want two expiries, half the entries each: %+v", want)
	}
	for _, cut := range []time.Time{want[0].NotAfter.Add(time.Microsecond), later[0].NotAfter} {
		equal(t, fmt.Sprintf("ListRevokedCertificates from %v by pages of 2", cut), revokedPages(t, f, store.RevokedCursor{NotAfter: cut}, 2), later)
	}
	beyond, err := f.s.ListRevokedCertificates(f.ctx, store.RevokedCursor{NotAfter: later[0].NotAfter.Add(time.Microsecond)}, 0)
	must(t, err)
	if len(beyond) != 0 {
		t.Fatalf("from after every expiry: %d entries, want none", len(beyond))
	}
}

// revokedPages reads ListRevokedCertificates from cursor to the end, limit
// a page, checking each page's size and order.
func revokedPages(t *testing.T, f *fixture, cursor store.RevokedCursor, limit int) []store.RevokedCertificate {
	t.Helper()
	var all []store.RevokedCertificate
	for range 1000 {
		page, err := f.s.ListRevokedCertificates(f.ctx, cursor, limit)
		must(t, err)
		if len(page) > limit {
			t.Fatalf("page of %d, limit %d", len(page), limit)
		}
		if len(page) == 0 {
			return all
		}
		for _, rc := range page {
			if !cursor.Before(rc.Cursor()) {
				t.Fatalf("entry %x (expires %v) not after the cursor %x (%v)", rc.Serial[:4], rc.NotAfter, cursor.Serial[:4], cursor.NotAfter)
			}
			cursor = rc.Cursor()
		}
		all = append(all, page...)
	}
	t.Fatal("ListRevokedCertificates does not end")
	return nil
}

// testTransitionRace races a suspension against a revocation, and a
// suspension against a renewal, of one device, many times: whatever the
// order, the device ends in a state some order of the calls explains,
// with the certificates and jobs of the calls that succeeded.
func testTransitionRace(t *testing.T, f *fixture) {
	jobs := func(store.Device) []store.Job { return deregisterJob("mqtt") }
	for r := range 8 {
		d := f.deviceIn(t, fmt.Sprintf("race-revoke-%d", r), store.StateOnboarded)
		errs := race(2, func(i int) error {
			tr := []store.Transition{store.TransitionSuspend, store.TransitionRevoke}[i]
			_, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: tr, Reason: "race", At: at(5 * time.Hour), Jobs: jobs})
			return err
		})
		must(t, errs[1]) // revoke is allowed from onboarded and suspended
		won := wins(t, errs[:1], store.ErrTransitionNotAllowed, "suspend racing revoke") + 1
		s := f.snapshot(t, d.id)
		if s.Device.State != store.StateRevoked || len(s.Jobs) != won {
			t.Fatalf("round %d: %s with %d jobs after %d transitions; want revoked, one job each", r, s.Device.State, len(s.Jobs), won)
		}
		for _, c := range s.Certs {
			if c.RevocationReason != store.ReasonKeyCompromise {
				t.Fatalf("round %d: certificate revoked for %d, want key compromise", r, c.RevocationReason)
			}
		}
	}
	for r := range 8 {
		d := f.deviceIn(t, fmt.Sprintf("race-renew-%d", r), store.StateOnboarded)
		errs := race(2, func(i int) error {
			if i == 0 {
				_, err := f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: store.TransitionSuspend, At: at(5 * time.Hour)})
				return err
			}
			return f.s.RecordRenewal(f.ctx, newCert(d.id, 100+r, at(5*time.Hour)), at(5*time.Hour), store.IssuanceLimit{})
		})
		must(t, errs[0])
		renewed := wins(t, errs[1:], store.ErrConflict, "renewal racing suspend")
		s := f.snapshot(t, d.id)
		if s.Device.State != store.StateSuspended || len(s.Certs) != len(d.certs)+renewed {
			t.Fatalf("round %d: %s with %d certificates; want suspended with %d", r, s.Device.State, len(s.Certs), len(d.certs)+renewed)
		}
		for _, c := range s.Certs {
			if c.RevocationReason != store.ReasonCertificateHold {
				t.Fatalf("round %d: a certificate of a suspended device is not on hold: %+v", r, c.RevokedAt)
			}
		}
	}
}
