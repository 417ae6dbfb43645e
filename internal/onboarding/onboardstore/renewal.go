package onboardstore

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// RecordRenewal implements onboarding.Certificates: the store checks the
// limit and the window, consumes a grant and enqueues the register jobs
// in the transaction that records the certificate.
func (s *State) RecordRenewal(ctx context.Context, cert onboarding.Certificate, at time.Time, terms onboarding.RenewalTerms) (bool, error) {
	forced, err := s.st.RenewCertificate(ctx, toStore(cert), at, store.RenewalTerms{
		Limit:  store.IssuanceLimit{Max: terms.Limit.Max, Window: terms.Limit.Window},
		Window: terms.Window,
	}, s.outbox.Onboarded(cert.Identity)...)
	return forced, translate(err)
}

// RenewalGranted implements onboarding.Certificates.
func (s *State) RenewalGranted(ctx context.Context, id identity.ID) (bool, error) {
	_, err := s.st.GetRenewalGrant(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, translate(err)
	}
	return true, nil
}
