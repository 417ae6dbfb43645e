package onboarding_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// newDeviceIn makes, boots and registers a device of a new product of
// validity and renewal window, as a manifest import would.
func (p *platform) newDeviceIn(t *testing.T, alg sigalg.ID, product string, validity, window time.Duration) (*device.Device, identity.ID) {
	t.Helper()
	ctx := context.Background()
	if err := p.store.CreateProduct(ctx, store.Product{ID: product, Name: product, CertValidity: validity,
		CloudEndpoint: "mqtts://broker.test:8883", CreatedAt: p.clock(), RenewalWindow: window}); err != nil {
		t.Fatal(err)
	}
	d, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: alg, RootKeyHashes: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	d.Program(p.ief)
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	enr, err := d.Enrol(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	batch := "w-" + enr.Identity.Short()
	dev := store.Device{Identity: enr.Identity, Algorithm: alg, PublicKey: enr.PublicKey, RootOfTrust: string(device.ClassKeygen),
		Injection: "none", State: store.StateRegistered}
	if _, err := p.store.ImportBatch(ctx, store.Batch{ID: batch, StationID: p.station, ProductID: product, DeviceCount: 1,
		ImportedAt: p.clock(), ManifestDigest: sha256.Sum256([]byte(batch))}, []store.Device{dev}); err != nil {
		t.Fatal(err)
	}
	return d, enr.Identity
}

// lastRenewal is the audit event of the device's last renewal.
func (p *platform) lastRenewal(t *testing.T, id identity.ID) store.AuditEvent {
	t.Helper()
	events, err := p.store.ListAudit(context.Background(), store.AuditFilter{Action: "device.renew", Subject: id.String(), Limit: 1000})
	if err != nil || len(events) == 0 {
		t.Fatalf("no renewal audited: %v", err)
	}
	return events[len(events)-1]
}

// TestRenewalWindow runs the real client against the real service in
// memory: the credentials say when the window opens; a renewal before is
// refused with the wait, a grant lets one through (audited forced), and
// the device's own RenewIfDue renews once the window is open and not
// before.
func TestRenewalWindow(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	svc := p.withIssuance(t, onboarding.IssuancePolicy{RenewLimit: -1})
	const validity, window = 30 * 24 * time.Hour, 10 * 24 * time.Hour
	d, id := p.newDeviceIn(t, sigalg.Ed25519, "windowed", validity, window)
	client := func(leaf *onboarding.Credentials) *onboarding.Client {
		tr := onboarding.InProcess{Service: svc, Source: "192.0.2.7", ChannelBinding: []byte("connection")}
		if leaf != nil {
			tr.Leaf = leafOf(t, leaf)
		}
		return &onboarding.Client{Transport: tr, ServerName: serverName, CSRs: onboardpki.CSRs{}}
	}
	got, err := client(nil).OnboardDevice(ctx, d, sigalg.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := got.Credentials
	if !creds.RenewAfter.Equal(creds.NotAfter.Add(-window)) {
		t.Fatalf("renew_after %v, want not_after %v minus the window", creds.RenewAfter, creds.NotAfter)
	}
	if kept, renewed, err := client(creds).RenewIfDue(ctx, id, got.Operational, p.clock()); err != nil || renewed || !kept.NotAfter.Equal(creds.NotAfter) {
		t.Fatalf("RenewIfDue before the window: renewed %v, %v", renewed, err)
	}
	_, err = client(creds).RenewWithKey(ctx, id, got.Operational)
	wait, ok := onboarding.RetryAfter(err)
	if early := creds.RenewAfter.Sub(p.clock()); !errors.Is(err, onboarding.ErrRenewalNotDue) || !ok || wait < early || wait >= early+time.Second {
		t.Fatalf("renewal before the window: %v (retry after %v), want ErrRenewalNotDue and about %v", err, wait, early)
	}
	if ev := p.lastRenewal(t, id); ev.Outcome != "denied" || ev.Detail != "renewal-not-due" {
		t.Fatalf("refused renewal audited as %+v", ev)
	}

	if err := p.store.GrantRenewal(ctx, store.RenewalGrant{Identity: id, GrantedAt: p.clock(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	forced, err := client(creds).RenewWithKey(ctx, id, got.Operational)
	if err != nil {
		t.Fatalf("forced renewal: %v", err)
	}
	if ev := p.lastRenewal(t, id); ev.Outcome != "ok" || ev.Detail != "forced" {
		t.Fatalf("forced renewal audited as %+v", ev)
	}
	if _, err := client(forced).RenewWithKey(ctx, id, got.Operational); !errors.Is(err, onboarding.ErrRenewalNotDue) {
		t.Fatalf("a second renewal after the forced one: %v, want ErrRenewalNotDue", err)
	}

	p.advance(forced.RenewAfter.Sub(p.clock()) - time.Second)
	if _, renewed, err := client(forced).RenewIfDue(ctx, id, got.Operational, p.clock()); err != nil || renewed {
		t.Fatalf("RenewIfDue a second before the window: renewed %v, %v", renewed, err)
	}
	p.advance(time.Second)
	next, renewed, err := client(forced).RenewIfDue(ctx, id, got.Operational, p.clock())
	if err != nil || !renewed || !next.NotAfter.After(forced.NotAfter) || !next.RenewAfter.Equal(next.NotAfter.Add(-window)) {
		t.Fatalf("RenewIfDue once the window opened: renewed %v, %+v, %v", renewed, next, err)
	}
	if ev := p.lastRenewal(t, id); ev.Outcome != "ok" || ev.Detail != "ok" {
		t.Fatalf("due renewal audited as %+v", ev)
	}
}

// TestRenewAfterWithoutWindow: a product without a window renews at any
// time, and the credentials advise two thirds into the validity.
func TestRenewAfterWithoutWindow(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	svc := p.withIssuance(t, onboarding.IssuancePolicy{RenewLimit: -1})
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.ECDSAP256)
	client := &onboarding.Client{Transport: onboarding.InProcess{Service: svc, Source: "a"}, ServerName: serverName, CSRs: onboardpki.CSRs{}}
	got, err := client.OnboardDevice(ctx, d, sigalg.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, got.Credentials)
	want := leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3)
	if due, err := onboarding.RenewalDue(got.Credentials); err != nil || !got.Credentials.RenewAfter.Equal(want) || !due.Equal(want) {
		t.Fatalf("renew_after %v (RenewalDue %v, %v), want %v", got.Credentials.RenewAfter, due, err, want)
	}
	legacy := *got.Credentials
	legacy.RenewAfter = time.Time{}
	if due, err := onboarding.RenewalDue(&legacy); err != nil || !due.Equal(want) {
		t.Fatalf("RenewalDue of credentials without renew_after: %v, %v; want %v from the leaf", due, err, want)
	}
	client.Transport = onboarding.InProcess{Service: svc, Source: "a", Leaf: leaf, ChannelBinding: []byte("c")}
	if _, err := client.RenewWithKey(ctx, id, got.Operational); err != nil {
		t.Fatalf("a renewal right after onboarding without a window: %v", err)
	}
}
