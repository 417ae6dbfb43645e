package onboarding_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// withIssuance is a service over p's store and CA with policy.
func (p *platform) withIssuance(t *testing.T, policy onboarding.IssuancePolicy) *onboarding.Service {
	t.Helper()
	cfg := p.config(p.clock, -1, -1)
	cfg.Issuance = policy
	svc, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (p *platform) clock() time.Time { return *p.now.Load() }

func (p *platform) advance(d time.Duration) {
	later := p.now.Load().Add(d)
	p.now.Store(&later)
}

// proofFor is what d sends in answer to ch with csr, signed properly.
func proofFor(t *testing.T, d *device.Device, id identity.ID, ch onboarding.ChallengeResponse, csr []byte) onboarding.ProofRequest {
	t.Helper()
	raw, _ := hex.DecodeString(ch.ChallengeID)
	_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, ch.ServerName, csr))
	if err != nil {
		t.Fatal(err)
	}
	return onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig}
}

// boundCSR is a request for op naming name, bound to ch.
func boundCSR(t *testing.T, op crypto.Signer, name string, ch onboarding.ChallengeResponse) []byte {
	t.Helper()
	raw, _ := hex.DecodeString(ch.ChallengeID)
	csr, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: name, ChallengePassword: onboarding.CSRBinding([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, ch.ServerName)})
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func opKey(t *testing.T, d *device.Device) crypto.Signer {
	t.Helper()
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// TestCSRBoundToDeviceAndExchange: a request must name the proving device
// and, bound, belong to this challenge; another device's request is
// refused even with a good proof.
func TestCSRBoundToDeviceAndExchange(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	strict := p.withIssuance(t, onboarding.IssuancePolicy{})
	a, aID := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	b, bID := p.newDevice(t, device.ClassKeygen, sigalg.MLDSA44)
	chA := p.challenge(t, aID)
	csrA := boundCSR(t, opKey(t, a), aID.String(), chA)

	unbound, _ := pki.CreateCSRWith(opKey(t, b), pki.CSROptions{CommonName: bID.String()})
	for _, c := range []struct {
		name string
		csr  func(ch onboarding.ChallengeResponse) []byte
	}{
		{"another device's request", func(onboarding.ChallengeResponse) []byte { return csrA }},
		{"bound to another challenge", func(onboarding.ChallengeResponse) []byte { return boundCSR(t, opKey(t, b), bID.String(), chA) }},
		{"naming another identity", func(ch onboarding.ChallengeResponse) []byte { return boundCSR(t, opKey(t, b), aID.String(), ch) }},
		{"not bound, binding required", func(onboarding.ChallengeResponse) []byte { return unbound }},
		{"no subject", func(ch onboarding.ChallengeResponse) []byte { return boundCSR(t, opKey(t, b), "", ch) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := p.challenge(t, bID)
			_, err := strict.Prove(ctx, proofFor(t, b, bID, ch, c.csr(ch)), "192.0.2.2")
			if !errors.Is(err, onboarding.ErrBadCSR) {
				t.Fatalf("Prove = %v, want onboarding.ErrBadCSR", err)
			}
			raw, _ := hex.DecodeString(ch.ChallengeID)
			if _, err := p.store.ConsumeChallenge(ctx, [onboarding.ChallengeIDSize]byte(raw), p.clock()); !errors.Is(err, store.ErrChallengeUsed) {
				t.Errorf("the refused answer left its challenge usable: %v", err)
			}
		})
	}
	if certs, _ := p.store.ListCertificates(ctx, bID); len(certs) != 0 {
		t.Fatalf("refused requests issued %d certificates", len(certs))
	}
	// The right requests: bound and naming the device, under the default
	// policy; unbound where the policy allows it.
	if _, err := strict.Prove(ctx, proofFor(t, a, aID, chA, csrA), "192.0.2.1"); err != nil {
		t.Fatalf("A's own bound request: %v", err)
	}
	ch := p.challenge(t, bID)
	lax := p.withIssuance(t, onboarding.IssuancePolicy{AllowUnboundCSR: true})
	if _, err := lax.Prove(ctx, proofFor(t, b, bID, ch, unbound), "192.0.2.2"); err != nil {
		t.Fatalf("an unbound request where binding is optional: %v", err)
	}
}

// TestOperationalKeyOfAnotherDevice: a key certified for one device is
// refused for another, even in a request that device made properly.
func TestOperationalKeyOfAnotherDevice(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	a, aID := p.newDevice(t, device.ClassKeygen, sigalg.ECDSAP256)
	b, bID := p.newDevice(t, device.ClassKeygen, sigalg.ECDSAP256)
	shared := opKey(t, a)
	ch := p.challenge(t, aID)
	if _, err := p.svc.Prove(ctx, proofFor(t, a, aID, ch, boundCSR(t, shared, aID.String(), ch)), "a"); err != nil {
		t.Fatal(err)
	}
	ch = p.challenge(t, bID)
	_, err := p.svc.Prove(ctx, proofFor(t, b, bID, ch, boundCSR(t, shared, bID.String(), ch)), "b")
	if !errors.Is(err, onboarding.ErrBadCSR) {
		t.Fatalf("Prove with A's key = %v, want onboarding.ErrBadCSR", err)
	}
	raw, _ := hex.DecodeString(ch.ChallengeID)
	if _, err := p.store.ConsumeChallenge(ctx, [onboarding.ChallengeIDSize]byte(raw), p.clock()); !errors.Is(err, store.ErrChallengeUsed) {
		t.Errorf("the refused answer left its challenge usable: %v", err)
	}
	if dev, _ := p.store.GetDevice(ctx, bID); dev.State != store.StateRegistered {
		t.Fatalf("device B is %s", dev.State)
	}
	// A onboarding again with its own key is fine.
	ch = p.challenge(t, aID)
	if _, err := p.svc.Prove(ctx, proofFor(t, a, aID, ch, boundCSR(t, shared, aID.String(), ch)), "a"); err != nil {
		t.Fatalf("A again with its own key: %v", err)
	}
}

func leafOf(t *testing.T, creds *onboarding.Credentials) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(creds.CertificateChain[0]))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestRenewalLimitAndGrace: renewals are limited per device; a replaced
// certificate works for its grace and not after, and only the one
// replaced last has one.
func TestRenewalLimitAndGrace(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	svc := p.withIssuance(t, onboarding.IssuancePolicy{RenewLimit: 3, RenewWindow: time.Hour, SupersededGrace: 5 * time.Minute})
	d, id := p.newDevice(t, device.ClassPUF, sigalg.Ed25519)
	op := opKey(t, d)
	ch := p.challenge(t, id)
	creds, err := svc.Prove(ctx, proofFor(t, d, id, ch, boundCSR(t, op, id.String(), ch)), "a")
	if err != nil {
		t.Fatal(err)
	}
	first := leafOf(t, creds)
	renewCSR, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: onboarding.RenewBinding([]byte("conn"))})
	p.advance(time.Minute)
	renewed, err := svc.Renew(ctx, first, []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a")
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	second := leafOf(t, renewed)
	p.advance(4 * time.Minute)
	if _, err := svc.Credentials(ctx, first, "a"); err != nil {
		t.Fatalf("the replaced certificate within its grace: %v", err)
	}
	p.advance(time.Minute)
	if _, err := svc.Credentials(ctx, first, "a"); !errors.Is(err, onboarding.ErrSuperseded) {
		t.Fatalf("the replaced certificate after its grace: %v, want onboarding.ErrSuperseded", err)
	}
	// A second renewal: the second certificate gets a grace, and the
	// first, replaced twice, none even if it had some left.
	third, err := svc.Renew(ctx, second, []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a")
	if err != nil {
		t.Fatalf("second renewal: %v", err)
	}
	if _, err := svc.Credentials(ctx, second, "a"); err != nil {
		t.Fatalf("the certificate replaced last, within its grace: %v", err)
	}
	// The limit: three certificates within the hour.
	_, err = svc.Renew(ctx, leafOf(t, third), []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a")
	wait, ok := onboarding.RetryAfter(err)
	if !errors.Is(err, onboarding.ErrRenewalLimited) || !ok || wait != 54*time.Minute {
		t.Fatalf("a renewal over the limit: %v (retry after %v), want onboarding.ErrRenewalLimited and 54m", err, wait)
	}
	if certs, _ := p.store.ListCertificates(ctx, id); len(certs) != 3 {
		t.Fatalf("%d certificates, want 3", len(certs))
	}
	p.advance(wait)
	if _, err := svc.Renew(ctx, leafOf(t, third), []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a"); err != nil {
		t.Fatalf("a renewal after the wait: %v", err)
	}
	// A renewal's request must name the device, and a bound one must be
	// bound to the connection.
	otherName, _ := pki.CreateCSR(op, "someone else")
	wrongBinding, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: onboarding.RenewBinding([]byte("other connection"))})
	p.advance(time.Hour)
	latest, _ := p.store.ListCertificates(ctx, id)
	leaf, _ := x509.ParseCertificate(latest[0].DER)
	for _, csr := range [][]byte{otherName, wrongBinding} {
		if _, err := svc.Renew(ctx, leaf, []byte("this connection"), onboarding.RenewRequest{CSR: csr}, "a"); !errors.Is(err, onboarding.ErrBadCSR) {
			t.Errorf("renew: %v, want onboarding.ErrBadCSR", err)
		}
	}
	bound, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: onboarding.RenewBinding([]byte("this connection"))})
	if _, err := svc.Renew(ctx, leaf, []byte("this connection"), onboarding.RenewRequest{CSR: bound}, "a"); err != nil {
		t.Errorf("renew bound to its connection: %v", err)
	}
}
