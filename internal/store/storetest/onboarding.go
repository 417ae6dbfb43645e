package storetest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func newChallenge(n int, id identity.ID, issued, expires time.Time) store.Challenge {
	c := store.Challenge{Identity: id, ServerName: "hallmark.example.com", IssuedAt: issued, ExpiresAt: expires}
	binary.BigEndian.PutUint64(c.ID[8:], uint64(n)+1)
	c.Nonce = sha256.Sum256(c.ID[:])
	return c
}

func newCert(id identity.ID, n int, issued time.Time) store.Certificate {
	c := store.Certificate{
		Identity: id, NotBefore: issued.Add(-time.Minute), NotAfter: issued.Add(365 * 24 * time.Hour),
		DER: fakeKey("cert:"+id.String(), 600+n%50), IssuedAt: issued,
	}
	h := sha256.Sum256(append(id[:], byte(n), byte(n>>8), byte(n>>16)))
	copy(c.Serial[:], h[:])
	c.KeyHash = sha256.Sum256(append([]byte("key:"), c.Serial[:]...)) // a key of its own
	return c
}

func testChallenges(t *testing.T, f *fixture) {
	// The identity need not be registered: unknown identities get
	// challenges exactly like known ones.
	claimed := identity.FromSPKI([]byte("unregistered"))
	fresh := newChallenge(1, claimed, at(0), at(5*time.Minute))
	expiring := newChallenge(2, claimed, at(0), at(5*time.Minute))
	for _, c := range []store.Challenge{fresh, expiring} {
		must(t, f.s.CreateChallenge(f.ctx, c))
	}
	wantErr(t, "CreateChallenge with a taken ID", f.s.CreateChallenge(f.ctx, fresh), store.ErrExists)

	used := fresh
	used.UsedAt = at(time.Minute)
	for _, c := range []struct {
		name    string
		id      [16]byte
		now     time.Time
		want    store.Challenge
		wantErr error
	}{
		{"consume", fresh.ID, at(time.Minute), used, nil},
		{"consume again", fresh.ID, at(2 * time.Minute), store.Challenge{}, store.ErrChallengeUsed},
		{"used and since expired", fresh.ID, at(time.Hour), store.Challenge{}, store.ErrChallengeUsed},
		{"expired at ExpiresAt", expiring.ID, expiring.ExpiresAt, store.Challenge{}, store.ErrChallengeExpired},
		{"expired after", expiring.ID, at(time.Hour), store.Challenge{}, store.ErrChallengeExpired},
		// Refused as expired, it stayed unused: a (clock-skewed) earlier
		// call still gets it.
		{"expired one stayed unused", expiring.ID, at(4 * time.Minute), withUsed(expiring, at(4*time.Minute)), nil},
		{"unknown", [16]byte{0xff}, at(0), store.Challenge{}, store.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.s.ConsumeChallenge(f.ctx, c.id, c.now)
			if c.wantErr != nil {
				wantErr(t, "ConsumeChallenge", err, c.wantErr)
				return
			}
			must(t, err)
			equal(t, "consumed challenge", got, c.want)
		})
	}
}

func withUsed(c store.Challenge, t time.Time) store.Challenge {
	c.UsedAt = t
	return c
}

// testConsumeConcurrently races 16 consumers per challenge, over several
// challenges: exactly one may win each.
func testConsumeConcurrently(t *testing.T, f *fixture) {
	const rounds, racers = 10, 16
	for r := range rounds {
		c := newChallenge(100+r, identity.ID{byte(r)}, at(0), at(time.Minute))
		must(t, f.s.CreateChallenge(f.ctx, c))
		errs := race(racers, func(int) error {
			_, err := f.s.ConsumeChallenge(f.ctx, c.ID, at(time.Second))
			return err
		})
		if won := wins(t, errs, store.ErrChallengeUsed, fmt.Sprintf("round %d: ConsumeChallenge", r)); won != 1 {
			t.Fatalf("round %d: %d of %d concurrent consumers succeeded, want exactly 1", r, won, racers)
		}
	}
}

func testDeleteExpiredChallenges(t *testing.T, f *fixture) {
	var cs []store.Challenge
	for i := range 4 {
		c := newChallenge(i, identity.ID{1}, at(0), at(time.Duration(i+1)*time.Minute))
		must(t, f.s.CreateChallenge(f.ctx, c))
		cs = append(cs, c)
	}
	_, err := f.s.ConsumeChallenge(f.ctx, cs[0].ID, at(30*time.Second))
	must(t, err)
	for _, c := range []struct {
		name   string
		before time.Time
		want   int
	}{
		{"nothing expired yet", at(0), 0},
		// Used or not; expiring exactly at the cut-off is not "before" it.
		{"two expired before the third's expiry", cs[2].ExpiresAt, 2},
		{"again", cs[2].ExpiresAt, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := f.s.DeleteExpiredChallenges(f.ctx, c.before)
			must(t, err)
			if n != c.want {
				t.Errorf("deleted %d, want %d", n, c.want)
			}
		})
	}
	for i, c := range cs {
		_, err := f.s.ConsumeChallenge(f.ctx, c.ID, at(0))
		if i < 2 {
			wantErr(t, "ConsumeChallenge of a deleted challenge", err, store.ErrNotFound)
		} else {
			must(t, err)
		}
	}
}

func testRecordOnboarding(t *testing.T, f *fixture) {
	devices := makeDevices("onboard", 3)
	b := f.batch("onboard", "m-onboard")
	f.mustImport(t, b, devices)
	d0, d1, d2 := devices[0], devices[1], devices[2]
	must(t, f.s.RevokeDevice(f.ctx, d2.Identity, "lost", at(90*time.Minute)))
	first := newCert(d0.Identity, 1, at(2*time.Hour))
	renewal := newCert(d0.Identity, 2, at(30*24*time.Hour))
	renewal.IssuedAt = time.Time{} // defaults to the onboarding time
	taken := newCert(d1.Identity, 3, at(2*time.Hour))
	taken.Serial = first.Serial
	unknown := newCert(identity.ID{5}, 4, at(2*time.Hour))
	ofRevoked := newCert(d2.Identity, 5, at(2*time.Hour))

	onboarded := imported(d0, b)
	onboarded.State, onboarded.OnboardedAt = store.StateOnboarded, at(2*time.Hour)
	revoked := imported(d2, b)
	revoked = revokedAs(revoked, at(90*time.Minute), "lost")
	for _, c := range []struct {
		name       string
		cert       store.Certificate
		at         time.Time
		wantErr    error
		wantDevice store.Device
	}{
		{"first onboarding", first, at(2 * time.Hour), nil, onboarded},
		// Renewal adds a certificate; OnboardedAt keeps the first time.
		{"renewal", renewal, at(30 * 24 * time.Hour), nil, onboarded},
		{"serial taken", taken, at(2 * time.Hour), store.ErrExists, imported(d1, b)},
		{"unknown device", unknown, at(2 * time.Hour), store.ErrNotFound, store.Device{}},
		{"revoked device", ofRevoked, at(2 * time.Hour), store.ErrConflict, revoked},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := f.s.RecordOnboarding(f.ctx, c.cert, c.at)
			if c.wantErr != nil {
				wantErr(t, "RecordOnboarding", err, c.wantErr)
				if got, err := f.s.ListCertificates(f.ctx, c.cert.Identity); err != nil || len(got) != 0 {
					t.Errorf("refused onboarding stored certificates: %v, %v", got, err)
				}
			} else {
				must(t, err)
				got, err := f.s.GetCertificate(f.ctx, c.cert.Serial)
				must(t, err)
				want := c.cert
				if want.IssuedAt.IsZero() {
					want.IssuedAt = c.at
				}
				equal(t, "stored certificate", got, want)
			}
			if c.wantDevice.Identity == (identity.ID{}) {
				return
			}
			got, err := f.s.GetDevice(f.ctx, c.wantDevice.Identity)
			must(t, err)
			equal(t, "device", got, c.wantDevice)
		})
	}
	certs, err := f.s.ListCertificates(f.ctx, d0.Identity)
	must(t, err)
	if len(certs) != 2 || certs[0].Serial != renewal.Serial || certs[1].Serial != first.Serial {
		t.Fatalf("certificates after renewal: %d, want the renewal then the first", len(certs))
	}
	// The renewal superseded the first certificate; refusals changed
	// nothing.
	if !certs[0].SupersededAt.IsZero() || !certs[1].SupersededAt.Equal(at(30*24*time.Hour)) {
		t.Errorf("superseded at %v and %v; want the first at the renewal, the renewal not", certs[1].SupersededAt, certs[0].SupersededAt)
	}
}

func testCertificates(t *testing.T, f *fixture) {
	devices := makeDevices("certs", 2)
	f.mustImport(t, f.batch("certs", "m-certs"), devices)
	id := devices[0].Identity
	// Inserted out of order; two share an IssuedAt, and then the one
	// recorded later counts as newer.
	issued := []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour, 2 * time.Hour}
	var certs []store.Certificate
	for i, d := range issued {
		c := newCert(id, i, at(d))
		c.DER = fakeKey(string(rune('a'+i)), 500+i)
		must(t, f.s.RecordOnboarding(f.ctx, c, at(d)))
		certs = append(certs, c)
	}
	// Each recording superseded the one before it (in recording order,
	// whatever the IssuedAt).
	for i := range len(certs) - 1 {
		certs[i].SupersededAt = at(issued[i+1])
	}
	got, err := f.s.ListCertificates(f.ctx, id)
	must(t, err)
	equal(t, "ListCertificates, newest first", got, []store.Certificate{certs[0], certs[3], certs[2], certs[1]})

	for _, c := range []struct {
		name string
		id   identity.ID
	}{{"device without certificates", devices[1].Identity}, {"unknown device", identity.ID{4}}} {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.s.ListCertificates(f.ctx, c.id)
			if err != nil || len(got) != 0 {
				t.Errorf("ListCertificates = %d certificates, %v; want none", len(got), err)
			}
		})
	}
	_, err = f.s.GetCertificate(f.ctx, [16]byte{1})
	wantErr(t, "GetCertificate(unknown)", err, store.ErrNotFound)
}

func testGetChallenge(t *testing.T, f *fixture) {
	c := newChallenge(7, identity.FromSPKI([]byte("claimed")), at(0), at(5*time.Minute))
	_, err := f.s.GetChallenge(f.ctx, c.ID)
	wantErr(t, "GetChallenge of an unknown challenge", err, store.ErrNotFound)
	must(t, f.s.CreateChallenge(f.ctx, c))
	got, err := f.s.GetChallenge(f.ctx, c.ID)
	must(t, err)
	equal(t, "challenge", got, c)
	// Reading changes nothing: it can still be consumed once.
	if _, err := f.s.GetChallenge(f.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.ConsumeChallenge(f.ctx, c.ID, at(time.Minute))
	must(t, err)
	got, err = f.s.GetChallenge(f.ctx, c.ID)
	must(t, err)
	equal(t, "used challenge", got, withUsed(c, at(time.Minute)))
}

// testCompleteOnboarding checks the one-transaction onboarding: every
// refusal leaves the challenge, the device, the certificates, the jobs and
// the audit log as they were.
func testCompleteOnboarding(t *testing.T, f *fixture) {
	devices := makeDevices("complete", 3)
	b := f.batch("complete", "m-complete")
	f.mustImport(t, b, devices)
	d0, d1, d2 := devices[0], devices[1], devices[2]
	must(t, f.s.RevokeDevice(f.ctx, d2.Identity, "lost", at(time.Minute)))
	challenge := func(n int, id identity.ID) store.Challenge {
		c := newChallenge(100+n, id, at(0), at(5*time.Minute))
		must(t, f.s.CreateChallenge(f.ctx, c))
		return c
	}
	audit := func(id identity.ID) store.AuditEvent {
		return store.AuditEvent{Actor: "device:" + id.String(), Action: "device.onboard", Subject: id.String(), Outcome: "ok", RemoteAddr: "192.0.2.1"}
	}
	jobs := func(id identity.ID) []store.Job {
		return []store.Job{{Kind: store.JobRegister, Connector: "mqtt", Identity: id}, {Kind: store.JobRegister, Connector: "hook", Identity: id}}
	}
	nothingChanged := func(t *testing.T, c store.Challenge, d store.Device, auditBefore int) {
		t.Helper()
		got, err := f.s.GetChallenge(f.ctx, c.ID)
		must(t, err)
		equal(t, "challenge after a refused onboarding", got, c)
		if certs, err := f.s.ListCertificates(f.ctx, d.Identity); err != nil || len(certs) != 0 {
			t.Errorf("refused onboarding stored certificates: %d, %v", len(certs), err)
		}
		if js, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: d.Identity}); err != nil || len(js) != 0 {
			t.Errorf("refused onboarding enqueued jobs: %d, %v", len(js), err)
		}
		if n := len(auditOf(t, f)); n != auditBefore {
			t.Errorf("refused onboarding appended %d audit events", n-auditBefore)
		}
	}

	n := 0
	t.Run("success", func(t *testing.T) {
		c := challenge(1, d0.Identity)
		cert := newCert(d0.Identity, 1, at(time.Minute))
		must(t, f.s.CompleteOnboarding(f.ctx, c.ID, cert, at(time.Minute), audit(d0.Identity), jobs(d0.Identity)...))
		got, err := f.s.GetChallenge(f.ctx, c.ID)
		must(t, err)
		equal(t, "consumed challenge", got, withUsed(c, at(time.Minute)))
		stored, err := f.s.GetCertificate(f.ctx, cert.Serial)
		must(t, err)
		equal(t, "certificate", stored, cert)
		dev, err := f.s.GetDevice(f.ctx, d0.Identity)
		must(t, err)
		want := imported(d0, b)
		want.State, want.OnboardedAt = store.StateOnboarded, at(time.Minute)
		equal(t, "device", dev, want)
		js, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: d0.Identity})
		must(t, err)
		if len(js) != 2 || js[0].State != store.JobPending || js[0].Connector != "hook" {
			t.Errorf("jobs: %+v", js)
		}
		events := auditOf(t, f)
		last := events[len(events)-1]
		if last.Action != "device.onboard" || last.Subject != d0.Identity.String() || !last.Time.Equal(at(time.Minute)) {
			t.Errorf("audit event: %+v", last)
		}
		_, err = f.s.ConsumeChallenge(f.ctx, c.ID, at(2*time.Minute))
		wantErr(t, "ConsumeChallenge after CompleteOnboarding", err, store.ErrChallengeUsed)
	})
	for _, c := range []struct {
		name    string
		dev     store.Device
		setup   func(store.Challenge) store.Challenge
		cert    func(id identity.ID) store.Certificate
		now     time.Time
		wantErr error
	}{
		{"challenge used", d1, func(c store.Challenge) store.Challenge {
			_, err := f.s.ConsumeChallenge(f.ctx, c.ID, at(time.Minute))
			must(t, err)
			return withUsed(c, at(time.Minute))
		}, nil, at(2 * time.Minute), store.ErrChallengeUsed},
		{"challenge expired", d1, nil, nil, at(5 * time.Minute), store.ErrChallengeExpired},
		{"device revoked", d2, nil, nil, at(time.Minute), store.ErrConflict},
		{"device unknown", store.Device{Identity: identity.ID{9}}, nil, nil, at(time.Minute), store.ErrNotFound},
		{"serial taken", d1, nil, func(id identity.ID) store.Certificate {
			cert := newCert(id, 2, at(time.Minute))
			cert.Serial = newCert(d0.Identity, 1, at(time.Minute)).Serial
			return cert
		}, at(time.Minute), store.ErrExists},
	} {
		n++
		t.Run(c.name, func(t *testing.T) {
			ch := challenge(10+n, c.dev.Identity)
			if c.setup != nil {
				ch = c.setup(ch)
			}
			cert := newCert(c.dev.Identity, 3, c.now)
			if c.cert != nil {
				cert = c.cert(c.dev.Identity)
			}
			before := len(auditOf(t, f))
			err := f.s.CompleteOnboarding(f.ctx, ch.ID, cert, c.now, audit(c.dev.Identity), jobs(c.dev.Identity)...)
			wantErr(t, "CompleteOnboarding", err, c.wantErr)
			nothingChanged(t, ch, c.dev, before)
		})
	}
	t.Run("unknown challenge", func(t *testing.T) {
		err := f.s.CompleteOnboarding(f.ctx, [16]byte{0xee}, newCert(d1.Identity, 4, at(time.Minute)), at(time.Minute), audit(d1.Identity))
		wantErr(t, "CompleteOnboarding", err, store.ErrNotFound)
	})
	t.Run("concurrent answers", func(t *testing.T) {
		ch := challenge(50, d1.Identity)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = f.s.CompleteOnboarding(f.ctx, ch.ID, newCert(d1.Identity, 100+i, at(time.Minute)), at(time.Minute), audit(d1.Identity), jobs(d1.Identity)...)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrChallengeUsed):
				t.Errorf("a losing answer: %v, want ErrChallengeUsed", err)
			}
		}
		certs, err := f.s.ListCertificates(f.ctx, d1.Identity)
		must(t, err)
		js, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: d1.Identity})
		must(t, err)
		if won != 1 || len(certs) != 1 || len(js) != 2 {
			t.Errorf("%d answers won, %d certificates, %d jobs; want 1, 1, 2", won, len(certs), len(js))
		}
	})
}

// auditOf lists the whole audit log.
func auditOf(t *testing.T, f *fixture) []store.AuditEvent {
	t.Helper()
	f.settle(t)
	var all []store.AuditEvent
	var after int64
	for {
		page, err := f.s.ListAudit(f.ctx, store.AuditFilter{AfterSeq: after, Limit: 1000})
		must(t, err)
		all = append(all, page...)
		if len(page) < 1000 {
			return all
		}
		after = page[len(page)-1].Seq
	}
}
