package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The issuance rules of issue 10: a device has one current certificate,
// an operational key is certified for one device, and renewals are
// limited per device.

// supersededAt maps a device's certificates to when each was superseded,
// as in superseded.
func supersededAt(t *testing.T, f *fixture, id identity.ID) map[[16]byte]string {
	t.Helper()
	certs, err := f.s.ListCertificates(f.ctx, id)
	must(t, err)
	out := map[[16]byte]string{}
	for _, c := range certs {
		out[c.Serial] = superseded(c.SupersededAt)
	}
	return out
}

// superseded is a time comparable across zones; "current" for none.
func superseded(t time.Time) string {
	if t.IsZero() {
		return "current"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// testSupersession: every way of recording a certificate supersedes the
// device's current one, and only its own device's.
func testSupersession(t *testing.T, f *fixture) {
	devices := makeDevices("supersede", 2)
	f.mustImport(t, f.batch("supersede", "m-supersede"), devices)
	d, other := devices[0].Identity, devices[1].Identity
	c1 := newCert(d, 1, at(time.Hour))
	c2 := newCert(d, 2, at(2*time.Hour))
	c3 := newCert(d, 3, at(3*time.Hour))
	c4 := newCert(d, 4, at(4*time.Hour))
	o1 := newCert(other, 5, at(time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, c1, at(time.Hour)))
	must(t, f.s.RecordOnboarding(f.ctx, o1, at(time.Hour)))
	equal(t, "after the first onboarding", supersededAt(t, f, d), map[[16]byte]string{c1.Serial: "current"})

	must(t, f.s.RecordRenewal(f.ctx, c2, at(2*time.Hour), store.IssuanceLimit{Max: 10, Window: time.Hour}))
	equal(t, "after a renewal", supersededAt(t, f, d), map[[16]byte]string{c1.Serial: superseded(at(2 * time.Hour)), c2.Serial: "current"})

	// Onboarding again (a fresh challenge) supersedes too; the first
	// certificate keeps the time it was superseded at.
	ch := newChallenge(900, d, at(0), at(4*time.Hour))
	must(t, f.s.CreateChallenge(f.ctx, ch))
	must(t, f.s.CompleteOnboarding(f.ctx, ch.ID, c3, at(3*time.Hour), store.AuditEvent{Actor: "device:x", Action: "device.onboard", Outcome: "ok"}))
	equal(t, "after onboarding again", supersededAt(t, f, d),
		map[[16]byte]string{c1.Serial: superseded(at(2 * time.Hour)), c2.Serial: superseded(at(3 * time.Hour)), c3.Serial: "current"})

	// A refused recording supersedes nothing.
	taken := c4
	taken.Serial = c1.Serial
	wantErr(t, "RecordOnboarding with a taken serial", f.s.RecordOnboarding(f.ctx, taken, at(4*time.Hour)), store.ErrExists)
	equal(t, "after a refusal", supersededAt(t, f, d),
		map[[16]byte]string{c1.Serial: superseded(at(2 * time.Hour)), c2.Serial: superseded(at(3 * time.Hour)), c3.Serial: "current"})
	got, err := f.s.GetCertificate(f.ctx, c2.Serial)
	must(t, err)
	if !got.SupersededAt.Equal(at(3*time.Hour)) || got.KeyHash != c2.KeyHash {
		t.Errorf("GetCertificate: superseded at %v, key hash %x", got.SupersededAt, got.KeyHash[:4])
	}
	equal(t, "the other device's", supersededAt(t, f, other), map[[16]byte]string{o1.Serial: "current"})
}

// testOperationalKeyUnique: a key certified for one device is refused for
// another by every write, which then changes nothing; the device itself
// may be certified for its key again, and a certificate without a key
// hash is not checked.
func testOperationalKeyUnique(t *testing.T, f *fixture) {
	devices := makeDevices("opkey", 2)
	b := f.batch("opkey", "m-opkey")
	f.mustImport(t, b, devices)
	a, bID := devices[0].Identity, devices[1].Identity
	first := newCert(a, 1, at(time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, first, at(time.Hour)))

	stolen := newCert(bID, 2, at(2*time.Hour))
	stolen.KeyHash = first.KeyHash
	wantErr(t, "RecordOnboarding of another device's key", f.s.RecordOnboarding(f.ctx, stolen, at(2*time.Hour)), store.ErrKeyInUse)
	wantErr(t, "RecordRenewal of another device's key",
		f.s.RecordRenewal(f.ctx, stolen, at(2*time.Hour), store.IssuanceLimit{Max: 5, Window: time.Hour}), store.ErrKeyInUse)
	ch := newChallenge(910, bID, at(0), at(time.Hour*3))
	must(t, f.s.CreateChallenge(f.ctx, ch))
	auditBefore := len(auditOf(t, f))
	wantErr(t, "CompleteOnboarding of another device's key",
		f.s.CompleteOnboarding(f.ctx, ch.ID, stolen, at(2*time.Hour), store.AuditEvent{Actor: "device:b", Action: "device.onboard", Outcome: "ok"},
			store.Job{Kind: store.JobRegister, Connector: "mqtt", Identity: bID}), store.ErrKeyInUse)
	got, err := f.s.GetChallenge(f.ctx, ch.ID)
	must(t, err)
	equal(t, "challenge after the refusal", got, ch)
	if certs, err := f.s.ListCertificates(f.ctx, bID); err != nil || len(certs) != 0 {
		t.Errorf("the refused device has %d certificates (%v)", len(certs), err)
	}
	if js, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: bID}); err != nil || len(js) != 0 {
		t.Errorf("the refusal enqueued %d jobs (%v)", len(js), err)
	}
	if n := len(auditOf(t, f)); n != auditBefore {
		t.Errorf("the refusal appended %d audit events", n-auditBefore)
	}
	dev, err := f.s.GetDevice(f.ctx, bID)
	must(t, err)
	equal(t, "the refused device", dev, imported(devices[1], b))
	equal(t, "the key's device", supersededAt(t, f, a), map[[16]byte]string{first.Serial: "current"})

	// The same device keeps its key across a renewal.
	again := newCert(a, 3, at(3*time.Hour))
	again.KeyHash = first.KeyHash
	must(t, f.s.RecordRenewal(f.ctx, again, at(3*time.Hour), store.IssuanceLimit{Max: 5, Window: time.Hour}))
	// No key hash: not checked, nothing claimed.
	legacy := newCert(bID, 4, at(4*time.Hour))
	legacy.KeyHash = [32]byte{}
	must(t, f.s.RecordOnboarding(f.ctx, legacy, at(4*time.Hour)))
	stored, err := f.s.GetCertificate(f.ctx, legacy.Serial)
	must(t, err)
	equal(t, "a certificate without a key hash", stored, legacy)
	// Device B may now take a key of its own, and A's stays A's.
	must(t, f.s.RecordOnboarding(f.ctx, newCert(bID, 5, at(5*time.Hour)), at(5*time.Hour)))
	wantErr(t, "RecordOnboarding of A's key after all that", f.s.RecordOnboarding(f.ctx, stolen, at(6*time.Hour)), store.ErrKeyInUse)
}

// testOperationalKeyRace: devices racing to be certified for one fresh
// key; exactly one wins, whichever connection (or replica) each uses.
func testOperationalKeyRace(t *testing.T, f *fixture) {
	const racers = 8
	devices := makeDevices("keyrace", racers)
	f.mustImport(t, f.batch("keyrace", "m-keyrace"), devices)
	for round := range 3 {
		certs := make([]store.Certificate, racers)
		for i, d := range devices {
			certs[i] = newCert(d.Identity, 100*round+i, at(time.Hour))
			certs[i].KeyHash = [32]byte{0xee, byte(round)}
		}
		errs := race(racers, func(i int) error { return f.s.RecordOnboarding(f.ctx, certs[i], at(time.Hour)) })
		if won := wins(t, errs, store.ErrKeyInUse, fmt.Sprintf("round %d: RecordOnboarding", round)); won != 1 {
			t.Fatalf("round %d: %d devices certified for one key, want 1", round, won)
		}
	}
}

// testRenewalLimit: Max certificates within Window, counting every
// certificate the device holds (its onboarding too); a refusal says when
// to retry and changes nothing.
func testRenewalLimit(t *testing.T, f *fixture) {
	devices := makeDevices("renewlimit", 2)
	f.mustImport(t, f.batch("renewlimit", "m-renewlimit"), devices)
	d := devices[0].Identity
	limit := store.IssuanceLimit{Max: 3, Window: time.Hour}
	must(t, f.s.RecordOnboarding(f.ctx, newCert(d, 1, at(0)), at(0)))
	must(t, f.s.RecordRenewal(f.ctx, newCert(d, 2, at(10*time.Minute)), at(10*time.Minute), limit))
	must(t, f.s.RecordRenewal(f.ctx, newCert(d, 3, at(20*time.Minute)), at(20*time.Minute), limit))
	before := supersededAt(t, f, d)

	err := f.s.RecordRenewal(f.ctx, newCert(d, 4, at(30*time.Minute)), at(30*time.Minute), limit)
	wantErr(t, "a fourth certificate within the hour", err, store.ErrIssuanceLimit)
	var lim *store.IssuanceLimitError
	if !errors.As(err, &lim) || !lim.RetryAt.Equal(at(time.Hour)) {
		t.Errorf("retry at %v, want the first certificate's time plus the window, %v", lim, at(time.Hour))
	}
	equal(t, "certificates after the refusal", supersededAt(t, f, d), before)
	// A certificate issued exactly Window ago no longer counts.
	must(t, f.s.RecordRenewal(f.ctx, newCert(d, 5, at(time.Hour)), at(time.Hour), limit))
	// No limit: RecordOnboarding, a zero Max.
	must(t, f.s.RecordRenewal(f.ctx, newCert(d, 6, at(time.Hour)), at(time.Hour), store.IssuanceLimit{}))
	must(t, f.s.RecordOnboarding(f.ctx, newCert(d, 7, at(time.Hour)), at(time.Hour)))
	// Another device has its own count.
	must(t, f.s.RecordRenewal(f.ctx, newCert(devices[1].Identity, 8, at(time.Hour)), at(time.Hour), limit))
}

// testRenewalLimitRace: concurrent renewals of one device count each
// other: no more than the limit succeed.
func testRenewalLimitRace(t *testing.T, f *fixture) {
	devices := makeDevices("renewrace", 1)
	f.mustImport(t, f.batch("renewrace", "m-renewrace"), devices)
	d := devices[0].Identity
	must(t, f.s.RecordOnboarding(f.ctx, newCert(d, 1, at(0)), at(0)))
	const racers = 12
	limit := store.IssuanceLimit{Max: 4, Window: time.Hour}
	errs := race(racers, func(i int) error {
		return f.s.RecordRenewal(f.ctx, newCert(d, 10+i, at(time.Minute)), at(time.Minute), limit)
	})
	won := wins(t, errs, store.ErrIssuanceLimit, "a concurrent renewal")
	certs, err := f.s.ListCertificates(f.ctx, d)
	must(t, err)
	current := 0
	for _, c := range certs {
		if c.SupersededAt.IsZero() {
			current++
		}
	}
	if won != limit.Max-1 || len(certs) != limit.Max || current != 1 {
		t.Fatalf("%d renewals won, %d certificates, %d current; want %d, %d, 1", won, len(certs), current, limit.Max-1, limit.Max)
	}
}
