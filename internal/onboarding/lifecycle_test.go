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

// TestLifecycleStatesRefused: a suspended device is refused its
// credentials and renewal (device-suspended) until resumed; a
// decommissioned one cannot onboard (device-decommissioned); once
// reprovisioned it onboards afresh, and its old certificate is refused.
func TestLifecycleStatesRefused(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	svc := p.withIssuance(t, onboarding.IssuancePolicy{})
	d, id := p.newDevice(t, device.ClassPUF, sigalg.Ed25519)
	op := opKey(t, d)
	onboard := func() (*onboarding.Credentials, error) {
		ch := p.challenge(t, id)
		return svc.Prove(ctx, proofFor(t, d, id, ch, boundCSR(t, op, id.String(), ch)), "a")
	}
	move := func(tr store.Transition) {
		t.Helper()
		p.advance(time.Second)
		if _, err := p.store.TransitionDevice(ctx, id, store.TransitionRequest{Transition: tr, Reason: "test", At: p.clock()}); err != nil {
			t.Fatal(err)
		}
	}
	renewCSR, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: onboarding.RenewBinding([]byte("conn"))})
	use := func(what string, leafCreds *onboarding.Credentials, want error) {
		t.Helper()
		leaf := leafOf(t, leafCreds)
		if _, err := svc.Credentials(ctx, leaf, "a"); !errors.Is(err, want) {
			t.Fatalf("%s: credentials %v, want %v", what, err, want)
		}
		if want != nil {
			if _, err := svc.Renew(ctx, leaf, []byte("conn"), onboarding.RenewRequest{CSR: renewCSR}, "a"); !errors.Is(err, want) {
				t.Fatalf("%s: renewal %v, want %v", what, err, want)
			}
		}
	}
	creds, err := onboard()
	if err != nil {
		t.Fatal(err)
	}
	move(store.TransitionSuspend)
	use("suspended", creds, onboarding.ErrSuspended)
	if code := onboarding.ErrorCode(onboarding.ErrSuspended); code != "suspended" {
		t.Fatalf("ErrorCode(ErrSuspended) = %q", code)
	}
	if _, err := onboard(); !errors.Is(err, onboarding.ErrSuspended) {
		t.Fatalf("onboarding a suspended device: %v, want ErrSuspended", err)
	}
	move(store.TransitionResume)
	use("resumed", creds, nil)

	move(store.TransitionDecommission)
	use("decommissioned", creds, onboarding.ErrDecommissioned)
	if _, err := onboard(); !errors.Is(err, onboarding.ErrDecommissioned) {
		t.Fatalf("onboarding a decommissioned device: %v, want ErrDecommissioned", err)
	}
	move(store.TransitionReprovision)
	use("the certificate from before the reprovision", creds, onboarding.ErrNotOnboarded)
	fresh, err := onboard()
	if err != nil {
		t.Fatalf("onboarding afresh after the reprovision: %v", err)
	}
	use("onboarded afresh", fresh, nil)
	use("the certificate from before, after onboarding afresh", creds, onboarding.ErrRevoked)

	move(store.TransitionRevoke)
	use("revoked", fresh, onboarding.ErrRevoked)
	if _, err := onboard(); !errors.Is(err, onboarding.ErrRevoked) {
		t.Fatalf("onboarding a revoked device: %v, want ErrRevoked", err)
	}
}
