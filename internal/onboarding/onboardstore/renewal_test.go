package onboardstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestRenewalWindowTranslated: a renewal refused as not due is
// onboarding's RenewalNotDueError, saying when, and still the store's
// sentinel; a grant reads as granted and lets the renewal through,
// reported forced, once.
func TestRenewalWindowTranslated(t *testing.T) {
	s, st, ids := fixture(t, 1)
	ctx := context.Background()
	a := ids[0]
	if err := s.CompleteOnboarding(ctx, challenge(t, s, a, t0.Add(time.Minute)), cert(a, 1, 1), t0,
		onboarding.Event{Identity: a, Action: "device.onboard", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	terms := onboarding.RenewalTerms{Window: 10 * time.Minute} // cert's NotAfter is t0+1h: due at t0+50m
	_, err := s.RecordRenewal(ctx, cert(a, 2, 2), t0.Add(time.Minute), terms)
	var notDue *onboarding.RenewalNotDueError
	if !errors.As(err, &notDue) || !errors.Is(err, onboarding.ErrRenewalNotDue) || !errors.Is(err, store.ErrRenewalNotDue) ||
		!notDue.DueAt.Equal(t0.Add(50*time.Minute)) {
		t.Fatalf("renewal before the window: %v; want a RenewalNotDueError due at t0+50m", err)
	}
	if granted, err := s.RenewalGranted(ctx, a); err != nil || granted {
		t.Fatalf("RenewalGranted before a grant = %v, %v", granted, err)
	}
	if err := st.GrantRenewal(ctx, store.RenewalGrant{Identity: a, GrantedAt: t0, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if granted, err := s.RenewalGranted(ctx, a); err != nil || !granted {
		t.Fatalf("RenewalGranted after a grant = %v, %v", granted, err)
	}
	if forced, err := s.RecordRenewal(ctx, cert(a, 2, 2), t0.Add(time.Minute), terms); err != nil || !forced {
		t.Fatalf("renewal with a grant: forced %v, %v", forced, err)
	}
	if granted, err := s.RenewalGranted(ctx, a); err != nil || granted {
		t.Fatalf("RenewalGranted after the forced renewal = %v, %v", granted, err)
	}
	if err := st.CreateProduct(ctx, store.Product{ID: "windowed", Name: "W", CertValidity: time.Hour, CloudEndpoint: "mqtts://b.test",
		CreatedAt: t0, RenewalWindow: 20 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Product(ctx, "windowed"); err != nil || p.RenewalWindow != 20*time.Minute {
		t.Fatalf("Product = %+v, %v; want its renewal window", p, err)
	}
}
