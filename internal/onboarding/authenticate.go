package onboarding

import (
	"context"
	"crypto/x509"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// AuthenticateDevice returns the identity of the device that presented
// leaf, a client certificate mutual TLS verified, refusing it as the
// credentials route does (ErrNotOnboarded, ErrSuspended, ErrRevoked,
// ErrDecommissioned, or a superseded certificate past its grace). Other
// device routes (status reports) authenticate through it, so the rule of
// who may use a certificate has one owner. A refusal is audited as
// action; a success is not, since the caller's use case decides what it
// records.
func (s *Service) AuthenticateDevice(ctx context.Context, leaf *x509.Certificate, action, addr string) (identity.ID, error) {
	dev, _, err := s.deviceOf(ctx, leaf)
	if err != nil {
		s.audit(ctx, dev.Identity, action, "denied", ErrorCode(err), addr)
		return identity.ID{}, err
	}
	return dev.Identity, nil
}
