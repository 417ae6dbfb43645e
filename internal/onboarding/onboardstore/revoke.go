package onboardstore

import (
	"context"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// RevokeCertificate implements onboarding.Certificates: the audit event
// goes in the store's transaction.
func (s *State) RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, ev onboarding.Event) (bool, error) {
	changed, err := s.st.RevokeCertificate(ctx, serial, reason, at, audit.Build(event(ev), at))
	return changed, translate(err)
}
