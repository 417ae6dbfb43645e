package onboardstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fixture is a SQLite store with a product, a station and n registered
// ecdsa-p256 devices, and the binding over it.
func fixture(t *testing.T, n int) (*State, *sqlite.Store, []identity.ID) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateProduct(ctx, store.Product{ID: "sensor", Name: "Sensor", CertValidity: time.Hour,
		CloudEndpoint: "mqtts://broker.test:8883", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	station := identity.ID{7}
	if err := st.CreateStation(ctx, store.Station{ID: station, Name: "line", Algorithm: sigalg.Ed25519, PublicKey: []byte{1}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	var ids []identity.ID
	var devs []store.Device
	for i := range n {
		id := identity.ID{byte(i + 1), 0xa5}
		ids = append(ids, id)
		devs = append(devs, store.Device{Identity: id, Algorithm: sigalg.ECDSAP256, PublicKey: []byte{byte(i)}, RootOfTrust: "keygen",
			Injection: "none", State: store.StateRegistered})
	}
	if _, err := st.ImportBatch(ctx, store.Batch{ID: "b", StationID: station, ProductID: "sensor", ImportedAt: t0,
		ManifestDigest: sha256.Sum256([]byte("b"))}, devs); err != nil {
		t.Fatal(err)
	}
	return New(Config{Store: st, Outbox: connector.Outbox{Connectors: []string{"mqtt", "hook"}}, Now: func() time.Time { return t0 }}), st, ids
}

func challenge(t *testing.T, s *State, id identity.ID, expires time.Time) [onboarding.ChallengeIDSize]byte {
	t.Helper()
	c := onboarding.Challenge{Identity: id, ServerName: "hallmark.test", IssuedAt: t0, ExpiresAt: expires}
	rand.Read(c.ID[:])
	rand.Read(c.Nonce[:])
	if err := s.CreateChallenge(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetChallenge(context.Background(), c.ID)
	if err != nil || got != c {
		t.Fatalf("GetChallenge = %+v, %v; want %+v", got, err, c)
	}
	return c.ID
}

func cert(id identity.ID, serial, key byte) onboarding.Certificate {
	return onboarding.Certificate{Serial: [16]byte{serial}, Identity: id, NotBefore: t0, NotAfter: t0.Add(time.Hour),
		DER: []byte{serial}, IssuedAt: t0, KeyHash: [32]byte{key}}
}

// TestCompleteOnboarding: the one write records the certificate, the
// device's onboarding, the audit event as audit.Build makes it and one
// register job per connector, and the records read back translated.
func TestCompleteOnboarding(t *testing.T) {
	s, st, ids := fixture(t, 1)
	ctx := context.Background()
	id := ids[0]
	dev, err := s.DeviceOfSuite(ctx, id, sigalg.ECDSAP256)
	if err != nil || dev.Identity != id || dev.Suite != sigalg.ECDSAP256 || dev.ProductID != "sensor" || dev.Standing != onboarding.StandingRegistered {
		t.Fatalf("DeviceOfSuite = %+v, %v", dev, err)
	}
	if p, err := s.Product(ctx, "sensor"); err != nil || p.CertValidity != time.Hour || p.CloudEndpoint != "mqtts://broker.test:8883" {
		t.Fatalf("Product = %+v, %v", p, err)
	}
	chID := challenge(t, s, id, t0.Add(time.Minute))
	c := cert(id, 1, 1)
	ev := onboarding.Event{Time: t0, Identity: id, Action: "device.onboard", Outcome: "ok", Detail: "ok", Source: "192.0.2.1"}
	if err := s.CompleteOnboarding(ctx, chID, c, t0, ev); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Certificate(ctx, c.Serial); err != nil || got.Identity != id || got.KeyHash != c.KeyHash || !got.NotAfter.Equal(c.NotAfter) {
		t.Fatalf("Certificate = %+v, %v", got, err)
	}
	if d, _ := st.GetDevice(ctx, id); d.State != store.StateOnboarded {
		t.Fatalf("device %s", d.State)
	}
	events, _ := st.ListAudit(ctx, store.AuditFilter{Action: "device.onboard"})
	want := audit.Build(store.AuditEvent{Time: t0, Actor: "device:" + id.String(), Action: "device.onboard", Subject: id.String(),
		Outcome: "ok", Detail: "ok", RemoteAddr: "192.0.2.1"}, t0)
	if len(events) != 1 || events[0].Actor != want.Actor || events[0].Subject != want.Subject || events[0].RemoteAddr != want.RemoteAddr ||
		!events[0].Time.Equal(want.Time) {
		t.Fatalf("audit %+v, want %+v", events, want)
	}
	jobs, _ := st.ListJobs(ctx, store.JobFilter{Identity: id})
	if len(jobs) != 2 || jobs[0].Kind != store.JobRegister || jobs[1].Kind != store.JobRegister {
		t.Fatalf("jobs %+v, want a register job per connector", jobs)
	}

	s.Record(ctx, onboarding.Event{Identity: id, Action: "device.credentials", Outcome: "ok", Detail: "ok", Source: "192.0.2.2"})
	if events, _ := st.ListAudit(ctx, store.AuditFilter{Action: "device.credentials"}); len(events) != 1 ||
		events[0].Actor != "device:"+id.String() || !events[0].Time.Equal(t0) {
		t.Fatalf("recorded %+v", events)
	}
}

// TestErrorsTranslated: each refusal of the store is the onboarding error
// it means, and still the store's.
func TestErrorsTranslated(t *testing.T) {
	s, st, ids := fixture(t, 3)
	ctx := context.Background()
	a, b, revoked := ids[0], ids[1], ids[2]
	ev := onboarding.Event{Identity: a, Action: "device.onboard", Outcome: "ok", Detail: "ok"}
	check := func(what string, err, want, storeErr error) {
		t.Helper()
		if !errors.Is(err, want) || !errors.Is(err, storeErr) {
			t.Errorf("%s: %v, want %v (and %v)", what, err, want, storeErr)
		}
	}

	_, err := s.GetChallenge(ctx, [16]byte{9})
	check("unknown challenge", err, onboarding.ErrNotFound, store.ErrNotFound)
	check("use an unknown challenge", s.UseChallenge(ctx, [16]byte{9}, t0), onboarding.ErrNotFound, store.ErrNotFound)
	_, err = s.DeviceOfSuite(ctx, a, sigalg.Ed25519)
	check("device of another suite", err, onboarding.ErrNotFound, store.ErrNotFound)
	_, err = s.Device(ctx, identity.ID{0xee})
	check("unknown device", err, onboarding.ErrNotFound, store.ErrNotFound)
	_, err = s.Product(ctx, "none")
	check("unknown product", err, onboarding.ErrNotFound, store.ErrNotFound)

	used := challenge(t, s, a, t0.Add(time.Minute))
	if err := s.UseChallenge(ctx, used, t0); err != nil {
		t.Fatal(err)
	}
	check("use a used challenge", s.UseChallenge(ctx, used, t0), onboarding.ErrChallengeUsed, store.ErrChallengeUsed)
	check("complete with a used challenge", s.CompleteOnboarding(ctx, used, cert(a, 1, 1), t0, ev), onboarding.ErrChallengeUsed, store.ErrChallengeUsed)
	expired := challenge(t, s, a, t0)
	check("use an expired challenge", s.UseChallenge(ctx, expired, t0), onboarding.ErrChallengeExpired, store.ErrChallengeExpired)

	if err := st.RevokeDevice(ctx, revoked, "stolen", t0); err != nil {
		t.Fatal(err)
	}
	if dev, err := s.Device(ctx, revoked); err != nil || dev.Standing != onboarding.StandingRevoked {
		t.Fatalf("revoked device reads %+v, %v", dev, err)
	}
	check("complete for a revoked device", s.CompleteOnboarding(ctx, challenge(t, s, revoked, t0.Add(time.Minute)), cert(revoked, 1, 1), t0, ev),
		onboarding.ErrRevoked, store.ErrConflict)

	if err := s.CompleteOnboarding(ctx, challenge(t, s, a, t0.Add(time.Minute)), cert(a, 1, 1), t0, ev); err != nil {
		t.Fatal(err)
	}
	check("a serial taken", s.CompleteOnboarding(ctx, challenge(t, s, b, t0.Add(time.Minute)), cert(b, 1, 2), t0, ev),
		onboarding.ErrSerialTaken, store.ErrExists)
	check("a key of another device's", s.CompleteOnboarding(ctx, challenge(t, s, b, t0.Add(time.Minute)), cert(b, 2, 1), t0, ev),
		onboarding.ErrKeyInUse, store.ErrKeyInUse)

	_, err = s.RecordRenewal(ctx, cert(a, 3, 1), t0, onboarding.RenewalTerms{Limit: onboarding.RenewalLimit{Max: 1, Window: time.Hour}})
	check("a renewal over the limit", err, onboarding.ErrIssuanceLimit, store.ErrIssuanceLimit)
	var lim *onboarding.IssuanceLimitError
	if !errors.As(err, &lim) || !lim.RetryAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("renewal over the limit: %v, want an *IssuanceLimitError retrying at %v", err, t0.Add(time.Hour))
	}
	if _, err := s.RecordRenewal(ctx, cert(a, 3, 1), t0, onboarding.RenewalTerms{Limit: onboarding.RenewalLimit{Max: 2, Window: time.Hour}}); err != nil {
		t.Fatalf("a renewal under the limit: %v", err)
	}
	if certs, err := s.Certificates(ctx, a); err != nil || len(certs) != 2 || certs[1].SupersededAt.IsZero() || !certs[0].SupersededAt.IsZero() {
		t.Fatalf("Certificates = %+v, %v; want the renewal current and the first superseded", certs, err)
	}

	// The lifecycle states refuse a certificate with their own errors.
	for _, c := range []struct {
		t        store.Transition
		standing onboarding.Standing
		want     error
	}{
		{store.TransitionSuspend, onboarding.StandingSuspended, onboarding.ErrSuspended},
		{store.TransitionDecommission, onboarding.StandingDecommissioned, onboarding.ErrDecommissioned},
	} {
		if _, err := st.TransitionDevice(ctx, a, store.TransitionRequest{Transition: c.t, At: t0}); err != nil {
			t.Fatal(err)
		}
		if dev, err := s.Device(ctx, a); err != nil || dev.Standing != c.standing {
			t.Fatalf("after %s the device reads %+v, %v", c.t, dev, err)
		}
		_, err := s.RecordRenewal(ctx, cert(a, 4, 1), t0, onboarding.RenewalTerms{})
		check("a renewal after "+string(c.t), err, c.want, store.ErrConflict)
	}
}

// refusalLog records what the aggregator would be handed.
type refusalLog []audit.Refusal

func (l *refusalLog) Refuse(_ context.Context, r audit.Refusal) { *l = append(*l, r) }

func TestRefusalsFiledUnderOnboarding(t *testing.T) {
	var log refusalLog
	id := identity.ID{3}
	Refusals{Aggregator: &log}.Refuse(context.Background(), onboarding.Refusal{Identity: id, Action: "device.onboard",
		Reason: "rate-limited", Source: "192.0.2.1", SummaryOnly: true})
	want := audit.Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "rate-limited", Source: "192.0.2.1",
		Actor: "device:" + id.String(), Subject: id.String(), SummaryOnly: true}
	if len(log) != 1 || log[0] != want {
		t.Fatalf("refusals %+v, want %+v", log, want)
	}
}
