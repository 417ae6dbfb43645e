package onboarding

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// decoys stand in for the key of a device that is not registered, one per
// suite (DER SubjectPublicKeyInfo), so that refusing a proof for an
// unknown identity does the work refusing one for a registered identity
// does: parse a key of the suite, hash it to an identity, compare, verify
// the signature. Their private keys are thrown away at once: no signature
// verifies against a decoy.
type decoys map[sigalg.ID][]byte

func newDecoys() (decoys, error) {
	d := decoys{}
	for _, suite := range sigalg.All() {
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("onboarding: %s decoy key: %w", suite.ID(), err)
		}
		if d[suite.ID()], err = sigalg.MarshalPublicKey(key.Public()); err != nil {
			return nil, fmt.Errorf("onboarding: %s decoy key: %w", suite.ID(), err)
		}
	}
	return d, nil
}

// proofKey is the key a proof is checked against: the device's when it is
// registered with the suite the signature implies (genuine), that suite's
// decoy otherwise.
func (s *Service) proofKey(dev Device, registered bool, implied sigalg.ID) (spki []byte, genuine bool) {
	if registered {
		return dev.PublicKey, true
	}
	return s.decoys[implied], false
}

// lookUp reads the claimed identity's device if it is registered with the
// implied suite, and one more row, so that the store does the same work
// whether or not it is: a device of another suite is missed as an unknown
// identity is (Registry.DeviceOfSuite), and a row found costs more
// than a miss, so a found device's read is followed by a miss (a random
// identity) and a miss by a hit on the suite's shadow: a registered device
// of that suite, remembered from earlier lookups. Until the first lookup
// that finds a device of a suite there is no shadow and both reads miss;
// that lookup is the only one to cost differently.
func (s *Service) lookUp(ctx context.Context, id identity.ID, implied sigalg.ID) (Device, bool, error) {
	dev, err := s.cfg.State.DeviceOfSuite(ctx, id, implied)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return dev, false, fmt.Errorf("look up device: %w", err)
	}
	registered := err == nil
	var other identity.ID
	shadow, haveShadow := s.shadows.Load(implied)
	switch {
	case registered:
		rand.Read(other[:])
		if !haveShadow {
			s.shadows.Store(implied, id)
		}
	case haveShadow:
		other = shadow.(identity.ID)
	default:
		rand.Read(other[:])
	}
	_, _ = s.cfg.State.DeviceOfSuite(ctx, other, implied) // for its cost alone
	return dev, registered, nil
}

// impliedSuite is the suite whose signature sig looks like, from its bytes
// alone and never from the registry, so that the work a proof costs
// depends on what the request holds and not on whether its identity is
// registered. The ML-DSA sizes (2,420, 3,309 and 4,627 bytes) are
// distinct; Ed25519 signatures are 64 bytes; an ECDSA P-256 signature is
// a DER SEQUENCE of two INTEGERs of 8 to 72 bytes, 64 bytes among them
// (rarely). Anything else is taken for P-256 too, whose verification then
// refuses it at once, whoever it claims to be.
func impliedSuite(sig []byte) sigalg.ID {
	switch len(sig) {
	case ed25519.SignatureSize:
		if isECDSASignatureShape(sig) {
			return sigalg.ECDSAP256
		}
		return sigalg.Ed25519
	case 2420:
		return sigalg.MLDSA44
	case 3309:
		return sigalg.MLDSA65
	case 4627:
		return sigalg.MLDSA87
	}
	return sigalg.ECDSAP256
}

// isECDSASignatureShape reports whether sig is laid out as the DER of
// SEQUENCE { INTEGER, INTEGER } with short lengths, as every P-256
// signature is; an Ed25519 signature is so laid out with a chance below
// 2^-40.
func isECDSASignatureShape(sig []byte) bool {
	if len(sig) < 8 || sig[0] != 0x30 || int(sig[1]) != len(sig)-2 || sig[2] != 0x02 {
		return false
	}
	rLen := int(sig[3])
	if rLen == 0 || 4+rLen+2 > len(sig) || sig[4+rLen] != 0x02 {
		return false
	}
	sLen := int(sig[5+rLen])
	return sLen != 0 && 6+rLen+sLen == len(sig)
}
