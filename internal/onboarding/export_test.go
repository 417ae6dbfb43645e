package onboarding

import (
	"context"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// What the external tests, which run the Service over the real store
// binding and CA (onboardstore, onboardpki), see of its insides.

// ImpliedSuite is impliedSuite.
var ImpliedSuite = impliedSuite

// ProofKeyFor is the key a proof claiming id with a signature implying
// suite is checked against, and whether it is the device's own.
func (s *Service) ProofKeyFor(ctx context.Context, id identity.ID, implied sigalg.ID) (spki []byte, genuine bool, err error) {
	dev, found, err := s.lookUp(ctx, id, implied)
	if err != nil {
		return nil, false, err
	}
	spki, genuine = s.proofKey(dev, found, implied)
	return spki, genuine, nil
}

// CheckProof is checkProof.
func (s *Service) CheckProof(ctx context.Context, req ProofRequest, ch Challenge) (Device, error) {
	return s.checkProof(ctx, req, ch)
}
