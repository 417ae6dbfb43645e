package onboarding_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestRevokeOwn: a device revokes its current certificate with a reason
// it may give, which then authenticates nothing; reasons that are the
// CA's, and a second revocation by the revoked certificate, are refused
// and change nothing; the hook that refreshes the CRL runs once.
func TestRevokeOwn(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	notified := 0
	cfg := p.config(p.clock, -1, -1)
	cfg.CertificatesRevoked = func() { notified++ }
	svc, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, id := p.newDevice(t, device.ClassPUF, sigalg.Ed25519)
	op := opKey(t, d)
	ch := p.challenge(t, id)
	creds, err := svc.Prove(ctx, proofFor(t, d, id, ch, boundCSR(t, op, id.String(), ch)), "a")
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, creds)
	for _, reason := range []int{2, 6, 8, 9, 10, -1, 11} { // cACompromise, certificateHold, removeFromCRL, …
		if err := svc.RevokeOwn(ctx, leaf, reason, "a"); !errors.Is(err, onboarding.ErrMalformed) {
			t.Fatalf("reason %d: %v, want ErrMalformed", reason, err)
		}
	}
	certs, _ := p.store.ListCertificates(ctx, id)
	if !certs[0].RevokedAt.IsZero() || notified != 0 {
		t.Fatalf("after refused reasons: %+v, notified %d", certs[0], notified)
	}
	p.advance(time.Second)
	if err := svc.RevokeOwn(ctx, leaf, onboarding.ReasonCessationOfOperation, "a"); err != nil {
		t.Fatal(err)
	}
	certs, _ = p.store.ListCertificates(ctx, id)
	if !certs[0].RevokedAt.Equal(p.clock().Truncate(time.Microsecond)) || certs[0].RevocationReason != store.ReasonCessationOfOperation || notified != 1 {
		t.Fatalf("after revocation: %+v, notified %d", certs[0], notified)
	}
	if dev, _ := p.store.GetDevice(ctx, id); dev.State != store.StateOnboarded {
		t.Fatalf("device state %s after revoking its own certificate, want onboarded", dev.State)
	}
	if err := svc.RevokeOwn(ctx, leaf, onboarding.ReasonKeyCompromise, "a"); !errors.Is(err, onboarding.ErrRevoked) {
		t.Fatalf("second revocation: %v, want ErrRevoked", err)
	}
	renewCSR, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: onboarding.RenewBinding([]byte("conn"))})
	if _, err := svc.Renew(ctx, leaf, []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a"); !errors.Is(err, onboarding.ErrRevoked) {
		t.Fatalf("renewal with the revoked certificate: %v, want ErrRevoked", err)
	}
	if certs, _ = p.store.ListCertificates(ctx, id); certs[0].RevocationReason != store.ReasonCessationOfOperation || notified != 1 {
		t.Fatalf("refused requests changed the certificate: %+v, notified %d", certs[0], notified)
	}
}
