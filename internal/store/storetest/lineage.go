package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// migration is a migration of old to a fresh ML-DSA-65 identity made from
// seed, at when, keeping the old identity's current operational key.
func (f *fixture) migration(t *testing.T, old lifecycleDevice, seed string, when time.Time) store.Migration {
	t.Helper()
	pub := fakeKey("successor:"+seed, 1974)
	id := identity.FromSPKI(pub)
	cert := newCert(id, 1, when)
	if len(old.certs) > 0 {
		cert.KeyHash = old.certs[len(old.certs)-1].KeyHash // the device keeps its TLS key
	}
	var ch [16]byte
	copy(ch[:], fakeKey("challenge:"+seed, 16))
	return store.Migration{
		Old: old.id, New: id, NewAlgorithm: sigalg.MLDSA65, NewPublicKey: pub, Certificate: cert, ChallengeID: ch, At: when,
		Audit: store.AuditEvent{Actor: "device:" + old.id.String(), Action: "device.migrate", Subject: old.id.String(), Outcome: "ok"},
		Jobs: []store.Job{{Kind: store.JobDeregister, Connector: "mqtt", Identity: old.id},
			{Kind: store.JobRegister, Connector: "mqtt", Identity: id}},
	}
}

// migrated brings a device to StateMigrated (deviceIn's way there).
func (f *fixture) migrated(t *testing.T, d lifecycleDevice, seed string) {
	t.Helper()
	_, err := f.s.CompleteMigration(f.ctx, f.migration(t, d, seed, at(4*time.Hour)))
	must(t, err)
}

func testMigrationChallenges(t *testing.T, f *fixture) {
	c := store.MigrationChallenge{Identity: identity.ID{1}, Nonce: bytes.Repeat([]byte{9}, 32), ServerName: "hallmark.example",
		Target: sigalg.MLDSA65, IssuedAt: at(0), ExpiresAt: at(2 * time.Minute)}
	c.ID[0] = 1
	must(t, f.s.CreateMigrationChallenge(f.ctx, c))
	wantErr(t, "create a taken ID", f.s.CreateMigrationChallenge(f.ctx, c), store.ErrExists)
	expired := c
	expired.ID[0] = 2
	must(t, f.s.CreateMigrationChallenge(f.ctx, expired))

	got, err := f.s.ConsumeMigrationChallenge(f.ctx, c.ID, at(time.Minute))
	must(t, err)
	want := c
	want.IssuedAt, want.ExpiresAt, want.UsedAt = c.IssuedAt.UTC(), c.ExpiresAt.UTC(), at(time.Minute).UTC()
	equal(t, "consumed challenge", got, want)
	_, err = f.s.ConsumeMigrationChallenge(f.ctx, c.ID, at(time.Minute))
	wantErr(t, "consume twice", err, store.ErrChallengeUsed)
	_, err = f.s.ConsumeMigrationChallenge(f.ctx, c.ID, at(time.Hour))
	wantErr(t, "consume a used one after its expiry", err, store.ErrChallengeUsed)
	_, err = f.s.ConsumeMigrationChallenge(f.ctx, expired.ID, at(2*time.Minute))
	wantErr(t, "consume at expiry", err, store.ErrChallengeExpired)
	_, err = f.s.ConsumeMigrationChallenge(f.ctx, [16]byte{7}, at(0))
	wantErr(t, "consume an unknown one", err, store.ErrNotFound)

	// Concurrent consumers: exactly one wins.
	race := c
	race.ID[0] = 3
	must(t, f.s.CreateMigrationChallenge(f.ctx, race))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			_, err := f.s.ConsumeMigrationChallenge(f.ctx, race.ID, at(time.Minute))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrChallengeUsed):
				t.Errorf("concurrent consume: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent consumers won, want 1", wins)
	}
}

// testCompleteMigration: one transaction registers the successor,
// retires the old identity, revokes its certificates (superseded),
// passes its operational key on, records the lineage both ways, writes
// the events, the jobs and the audit event.
func testCompleteMigration(t *testing.T, f *fixture) {
	old := f.deviceIn(t, "migrate", store.StateOnboarded)
	// The successor is the same device: it keeps its allocated endpoint.
	if _, err := f.s.AllocateEndpoint(f.ctx, old.id, "mqtts://b2.example.com:8883"); err != nil {
		t.Fatal(err)
	}
	before, err := f.s.GetDevice(f.ctx, old.id)
	must(t, err)
	m := f.migration(t, old, "migrate", at(5*time.Hour))
	res, err := f.s.CompleteMigration(f.ctx, m)
	must(t, err)

	wantOld := before
	wantOld.State, wantOld.StateChangedAt, wantOld.StateReason = store.StateMigrated, at(5*time.Hour).UTC(), store.MigrationReason(m.New)
	equal(t, "predecessor", res.Predecessor, wantOld)
	got, err := f.s.GetDevice(f.ctx, old.id)
	must(t, err)
	equal(t, "predecessor read back", got, wantOld)
	wantNew := store.Device{Identity: m.New, Algorithm: sigalg.MLDSA65, PublicKey: m.NewPublicKey, RootOfTrust: before.RootOfTrust,
		Injection: before.Injection, BatchID: before.BatchID, StationID: before.StationID, ProductID: before.ProductID,
		State: store.StateOnboarded, CreatedAt: at(5 * time.Hour).UTC(), OnboardedAt: at(5 * time.Hour).UTC(),
		CloudEndpoint: "mqtts://b2.example.com:8883"}
	equal(t, "successor", res.Successor, wantNew)
	if res.Revoked != 2 {
		t.Errorf("revoked %d certificates, want the old identity's 2", res.Revoked)
	}
	certs, err := f.s.ListCertificates(f.ctx, old.id)
	must(t, err)
	for _, c := range certs {
		if !c.RevokedAt.Equal(at(5*time.Hour)) || c.RevocationReason != store.ReasonSuperseded {
			t.Errorf("old certificate %x: revoked %v reason %d, want superseded at the migration", c.Serial[:4], c.RevokedAt, c.RevocationReason)
		}
	}
	newCerts, err := f.s.ListCertificates(f.ctx, m.New)
	must(t, err)
	if len(newCerts) != 1 || newCerts[0].Serial != m.Certificate.Serial || !newCerts[0].RevokedAt.IsZero() {
		t.Fatalf("successor's certificates %+v", newCerts)
	}
	lin, err := f.s.GetLineage(f.ctx, old.id)
	must(t, err)
	link := store.LineageLink{Predecessor: old.id, Successor: m.New, At: at(5 * time.Hour).UTC(), ChallengeID: m.ChallengeID,
		FromAlgorithm: before.Algorithm, ToAlgorithm: sigalg.MLDSA65}
	if lin.Predecessor != nil || lin.Successor == nil {
		t.Fatalf("old identity's lineage %+v", lin)
	}
	equal(t, "old identity's successor link", *lin.Successor, link)
	lin, err = f.s.GetLineage(f.ctx, m.New)
	must(t, err)
	if lin.Successor != nil || lin.Predecessor == nil {
		t.Fatalf("new identity's lineage %+v", lin)
	}
	equal(t, "new identity's predecessor link", *lin.Predecessor, link)
	none, err := f.s.GetLineage(f.ctx, identity.ID{5})
	must(t, err)
	equal(t, "lineage of an unknown identity", none, store.DeviceLineage{})

	for _, c := range []struct {
		id   identity.ID
		want []store.EventKind
	}{{old.id, []store.EventKind{store.EventOnboarded, store.EventRenewed, store.EventMigrated}}, {m.New, []store.EventKind{store.EventOnboarded}}} {
		f.settle(t)
		events, err := f.s.ListEvents(f.ctx, store.EventFilter{Identity: c.id})
		must(t, err)
		equal(t, "events of "+c.id.Short(), kinds(events), c.want)
		if c.id == old.id && events[2].Detail != store.MigrationReason(m.New) {
			t.Errorf("device.migrated detail %q", events[2].Detail)
		}
	}
	for id, kind := range map[identity.ID]string{old.id: store.JobDeregister, m.New: store.JobRegister} {
		jobs, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: id})
		must(t, err)
		if len(jobs) != 1 || jobs[0].Kind != kind || jobs[0].Connector != "mqtt" {
			t.Errorf("jobs of %s: %+v, want one %s", id.Short(), jobs, kind)
		}
	}
	f.settle(t)
	audit, err := f.s.ListAudit(f.ctx, store.AuditFilter{Action: "device.migrate"})
	must(t, err)
	if len(audit) != 1 || !audit[0].Time.Equal(at(5*time.Hour)) {
		t.Fatalf("audit %+v", audit)
	}
	// The kept operational key is the successor's now: it renews with it,
	// and the old identity can be certified for nothing.
	renewal := newCert(m.New, 2, at(6*time.Hour))
	renewal.KeyHash = m.Certificate.KeyHash
	must(t, f.s.RecordRenewal(f.ctx, renewal, at(6*time.Hour), store.IssuanceLimit{}))
	var se *store.StateError
	err = f.s.RecordOnboarding(f.ctx, newCert(old.id, 9, at(7*time.Hour)), at(7*time.Hour))
	if !errors.As(err, &se) || se.State != store.StateMigrated {
		t.Fatalf("certify a migrated identity: %v, want a *StateError naming migrated", err)
	}
}

// testMigrationRefusals: a refused migration changes nothing.
func testMigrationRefusals(t *testing.T, f *fixture) {
	check := func(t *testing.T, m store.Migration, want error) {
		t.Helper()
		oldBefore := f.snapshot(t, m.Old)
		_, err := f.s.CompleteMigration(f.ctx, m)
		wantErr(t, "CompleteMigration", err, want)
		equal(t, "old identity after a refused migration", f.snapshot(t, m.Old), oldBefore)
		if _, err := f.s.GetDevice(f.ctx, m.New); !errors.Is(err, store.ErrNotFound) && m.New != (identity.ID{}) {
			if d, _ := f.s.GetDevice(f.ctx, m.New); d.CreatedAt.Equal(m.At) {
				t.Fatal("a refused migration registered the successor")
			}
		}
	}
	for _, state := range []store.DeviceState{store.StateRegistered, store.StateSuspended, store.StateRevoked, store.StateDecommissioned, store.StateMigrated} {
		t.Run("from "+string(state), func(t *testing.T) {
			d := f.deviceIn(t, "refuse-"+string(state), state)
			m := f.migration(t, d, "refuse-"+string(state)+"-again", at(9*time.Hour))
			oldBefore := f.snapshot(t, d.id)
			_, err := f.s.CompleteMigration(f.ctx, m)
			var se *store.StateError
			if !errors.As(err, &se) || se.State != state || !errors.Is(err, store.ErrConflict) {
				t.Fatalf("err = %v, want a *StateError naming %s", err, state)
			}
			equal(t, "device after a refused migration", f.snapshot(t, d.id), oldBefore)
			_, err = f.s.GetDevice(f.ctx, m.New)
			wantErr(t, "successor of a refused migration", err, store.ErrNotFound)
		})
	}
	t.Run("new identity registered", func(t *testing.T) {
		d := f.deviceIn(t, "refuse-taken", store.StateOnboarded)
		other := f.deviceIn(t, "refuse-taken-other", store.StateRegistered)
		m := f.migration(t, d, "refuse-taken", at(9*time.Hour))
		m.New = other.id
		check(t, m, store.ErrLineage)
	})
	t.Run("operational key of another device", func(t *testing.T) {
		d := f.deviceIn(t, "refuse-key", store.StateOnboarded)
		other := f.deviceIn(t, "refuse-key-other", store.StateOnboarded)
		m := f.migration(t, d, "refuse-key", at(9*time.Hour))
		m.Certificate.KeyHash = other.certs[1].KeyHash
		check(t, m, store.ErrKeyInUse)
		_, err := f.s.GetDevice(f.ctx, m.New)
		wantErr(t, "successor of a refused migration", err, store.ErrNotFound)
	})
	_, err := f.s.CompleteMigration(f.ctx, store.Migration{Old: identity.ID{3}, New: identity.ID{4}, At: at(0)})
	wantErr(t, "migrate an unknown device", err, store.ErrNotFound)
}
